"""The transport on the wire: headers, streamed bodies, answers, and the one exception boundary."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from airflow_provider_cos.protocol.errors import CosTransportError
from airflow_provider_cos.protocol.messages import HttpRequest
from airflow_provider_cos.transfer.transport import USER_AGENT, Transport
from tests.support.silentserver import SilentServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[dict[str, Any]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body})
        if self.path.startswith("/slow"):
            threading.Event().wait(2)
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        payload = b'{"code":0,"message":"SUCCESS"}'
        self.send_response(200)
        if self.path.startswith("/gzip"):
            payload = gzip.compress(payload)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.seen = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    srv.server_close()


def _transport(**kw: Any) -> Transport:
    return Transport(pool_size=2, timeout=kw.pop("timeout", (2.0, 5.0)), send_block_size=16 * 1024, **kw)


def test_headers_and_a_streamed_memoryview_body(server: str) -> None:
    t = _transport()
    buf = bytearray(b"PRE" + bytes(range(256)) * 400 + b"SUF")
    progress: list[int] = []
    req = HttpRequest(
        "POST",
        server + "/files/v2/x?op=1",
        {"Authorization": "SIG", "Accept": "application/json", "Content-Type": "multipart/form-data; boundary=B"},
    )
    resp = t.send(req, body=memoryview(buf), payload_len=len(buf) - 6, on_progress=progress.append)
    assert resp.status == 200 and resp.body == b'{"code":0,"message":"SUCCESS"}'
    seen = _Handler.seen[-1]
    assert seen["body"] == bytes(buf) and seen["path"] == "/files/v2/x?op=1"
    h = seen["headers"]
    assert h["User-Agent"] == USER_AGENT and h["Authorization"] == "SIG" and h["Accept"] == "application/json"
    assert h["Content-Length"] == str(len(buf)) and "Transfer-Encoding" not in h
    assert h["Content-Type"] == "multipart/form-data; boundary=B" and "gzip" in h["Accept-Encoding"]
    assert sum(progress) == len(buf) - 6 and len(progress) > 1  # reported block by block, payload only
    # request.body is used when no body is given; a GET has no body
    t.send(HttpRequest("POST", server + "/b", {"Content-Type": "application/json"}, b"{}"))
    assert _Handler.seen[-1]["body"] == b"{}" and _Handler.seen[-1]["headers"]["Content-Length"] == "2"
    t.send(HttpRequest("GET", server + "/g?op=stat", {}))
    assert _Handler.seen[-1]["method"] == "GET" and "Content-Length" not in _Handler.seen[-1]["headers"]
    t.close()


def test_answers_are_decoded_and_redirects_not_followed(server: str) -> None:
    t = _transport()
    assert t.send(HttpRequest("GET", server + "/gzip", {})).body == b'{"code":0,"message":"SUCCESS"}'
    assert t.send(HttpRequest("GET", server + "/redirect", {})).status == 302
    assert [s["path"] for s in _Handler.seen] == ["/gzip", "/redirect"]
    t.close()


def test_keep_alive_reuses_one_connection(server: str) -> None:
    t = _transport()
    for _ in range(5):
        t.send(HttpRequest("POST", server + "/k", {}, b"x"))
    ports = {s["headers"].get("Host") for s in _Handler.seen}
    assert len(ports) == 1
    # the pool used is the one of the client's requests.Session
    pool = t.session.get_adapter(server).poolmanager.connection_from_url(server)
    assert pool.num_connections == 1  # type: ignore[attr-defined]
    t.close()


def test_failures_become_cos_transport_errors(server: str) -> None:
    t = _transport(timeout=(1.0, 0.3))
    with pytest.raises(CosTransportError, match="timed out") as info:
        t.send(HttpRequest("GET", server + "/slow", {}))
    assert info.value.retryable and info.value.__cause__ is not None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(CosTransportError, match="connection failed") as info:
        t.send(HttpRequest("POST", dead + "/x", {}, b"data"))
    assert info.value.retryable
    t.close()
    with pytest.raises(CosTransportError, match="closed") as info:
        t.send(HttpRequest("GET", server + "/x", {}))
    assert not info.value.retryable


def test_budget_cuts_short_an_attempt_at_a_host_that_never_answers() -> None:
    """The retry deadline's remainder bounds one attempt, whatever the read timeout."""
    t = _transport(timeout=(5.0, 60.0))
    with SilentServer() as silent:
        started = time.monotonic()
        with pytest.raises(CosTransportError, match="timed out"):
            t.send(HttpRequest("GET", silent.url + "/x", {}), budget=0.5)
        elapsed = time.monotonic() - started
        assert silent.accepted == 1
    assert 0.4 < elapsed < 5
    t.close()


def test_tls_is_verified_against_the_requests_ca_bundle() -> None:
    import certifi

    t = _transport()
    kw = t.session.get_adapter("https://example.invalid").poolmanager.connection_pool_kw
    assert kw["cert_reqs"] == "CERT_REQUIRED" and kw["ca_certs"] == certifi.where()
    t.close()


def test_one_session_with_a_pool_sized_to_the_workers() -> None:
    t = Transport(pool_size=7, timeout=(1.0, 1.0))
    adapter = t.session.get_adapter("http://127.0.0.1")
    assert adapter is t.session.get_adapter("https://x.invalid")
    assert adapter.max_retries.total == 0  # the engine's RetryPolicy decides, not the adapter
    assert adapter.poolmanager.connection_pool_kw["maxsize"] == 7
    assert t.session.trust_env is False  # no proxies or netrc from the environment
    t.close()
