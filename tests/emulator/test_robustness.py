"""Bad input never crashes the emulator or yields a 500; HTTP details (proxy form, chunked, keep-alive)."""

from __future__ import annotations

import contextlib
import logging
import time
from urllib.parse import quote

import pytest
import requests

from airflow_provider_cos.emulator import DEMO, CosEmulator
from airflow_provider_cos.protocol.messages import CosRequest
from airflow_provider_cos.protocol.multipart import encode_form
from tests.emulator.client import Client, MiB, payload, raw_http, stored_bytes


@pytest.fixture
def v2(emulator: CosEmulator) -> Client:
    c = Client(emulator.url, "v2")
    c.mkdir("/d/")
    return c


def _assert_4xx_envelope(resp: requests.Response) -> dict[str, object]:
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)
    body = resp.json()
    assert isinstance(body["code"], int) and body["code"] < 0 and "message" in body
    return body  # type: ignore[no-any-return]


def _post(v2: Client, path_raw: str, body: bytes, content_type: str, sig: str | None = None) -> requests.Response:
    url = f"{v2.base_url}/files/v2/{DEMO.appid}/{DEMO.bucket}{path_raw}"
    return v2.http.post(
        url,
        data=body,
        timeout=10,
        headers={"Authorization": sig or v2.signer.multi(DEMO.appid, DEMO.bucket), "Content-Type": content_type},
    )


MALFORMED = [
    (b"garbage without boundary", "multipart/form-data; boundary=xyz"),
    (b'--xyz\r\nContent-Disposition: form-data; name="op"\r\n\r\nupload', "multipart/form-data; boundary=xyz"),
    (b"--xyz\r\n\r\nno headers\r\n--xyz--\r\n", "multipart/form-data; boundary=xyz"),
    (b"--xyz\r\nX: y\r\n\r\nv\r\n--xyz--\r\n", "multipart/form-data; boundary=xyz"),
    (b"anything", "multipart/form-data"),
    (b"[1, 2]", "application/json"),
    (b"{bad json", "application/json"),
    (b"\xff\xfe", "application/json"),
    (b"", "multipart/form-data; boundary=xyz"),
]


@pytest.mark.parametrize(("body", "ctype"), MALFORMED)
def test_malformed_bodies(v2: Client, body: bytes, ctype: str) -> None:
    _assert_4xx_envelope(_post(v2, "/d/x.bin", body, ctype))
    assert v2.stat("/d/").is_folder  # still serving


@pytest.mark.parametrize(
    "fields",
    [
        [("op", "upload_slice_init")],  # no filesize
        [("op", "upload_slice_init"), ("filesize", "-5")],
        [("op", "upload_slice_init"), ("filesize", "abc")],
        [("op", "upload_slice_init"), ("filesize", "99999999999999999999999")],
        [("op", "upload_slice_init"), ("filesize", "10"), ("sha", "zz")],
        [("op", "upload_slice_init"), ("filesize", "10"), ("uploadparts", "{not json")],
        [("op", "upload_slice_init"), ("filesize", "10"), ("uploadparts", '[{"offset":5}]')],
        [("op", "upload_slice_init"), ("filesize", "10"), ("slice_size", "-1")],
        [("op", "upload_slice_data"), ("session", "nope"), ("offset", "0")],
        [("op", "upload_slice_data")],
        [("op", "upload_slice_finish"), ("session", "nope"), ("filesize", "1")],
        [("op", "upload_slice_finish")],
        [("op", "upload")],  # no filecontent
    ],
)
def test_missing_and_bad_fields(v2: Client, fields: list[tuple[str, str]]) -> None:
    form = encode_form(fields)
    _assert_4xx_envelope(_post(v2, "/d/x.bin", form.body(), form.content_type))


def test_huge_offsets_and_bad_offsets(v2: Client) -> None:
    res = v2.init("/d/o.bin", payload(2 * MiB))
    for offset in ("99999999999999999999999999", "-1", "1e3", "", "0x10", " "):
        form = encode_form([("op", "upload_slice_data"), ("session", res.session), ("offset", offset)], "filecontent")
        _assert_4xx_envelope(_post(v2, "/d/o.bin", form.body(b"x" * 10), form.content_type))


@pytest.mark.parametrize(
    "raw_path",
    [
        "/d/../../etc/passwd",
        "/d/%2e%2e/%2e%2e/x",
        "/%2E%2E/x",
        "/d%2F..%2Fx",
        "/d/a%00b",
        "/d/%ff%fe",
        "/d/a%5cb",
        "/d//x",
        "/d/./x",
        "/d/a*b",
        "/d/a%0ab",
    ],
)
def test_path_traversal_and_illegal_paths(v2: Client, emulator: CosEmulator, raw_path: str) -> None:
    form = encode_form([("op", "upload")], "filecontent")
    body = form.body(b"evil")
    sig = v2.signer.multi(DEMO.appid, DEMO.bucket)
    # raw sockets: requests would fold a literal '..' or '.' segment before sending
    answer = raw_http(
        emulator.url,
        (
            f"POST /files/v2/{DEMO.appid}/{DEMO.bucket}{raw_path} HTTP/1.1\r\nHost: x\r\nAuthorization: {sig}\r\n"
            f"Content-Type: {form.content_type}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        + body,
    )
    assert answer.startswith(b"HTTP/1.1 4"), answer[:200]
    assert b'"code":-180' in answer or b'"code":-166' in answer, answer
    answer = raw_http(
        emulator.url,
        (
            f"GET /files/v2/{DEMO.appid}/{DEMO.bucket}{raw_path}?op=stat HTTP/1.1\r\n"
            f"Host: x\r\nAuthorization: {sig}\r\nConnection: close\r\n\r\n"
        ).encode(),
    )
    assert answer.startswith(b"HTTP/1.1 4") and b'"code":-1' in answer
    # nothing was written anywhere
    blobs = [p for p in emulator.data_dir.rglob("blobs/*") if p.is_file()]
    assert blobs == []
    assert not (emulator.data_dir.parent / "etc").exists()
    assert v2.stat("/d/").is_folder


def test_bad_signature_base64_and_unknown_routes(v2: Client) -> None:
    form = encode_form([("op", "upload")], "filecontent")
    _assert_4xx_envelope(_post(v2, "/d/a", form.body(b"a"), form.content_type, sig="%%%==="))
    for url in ("/", "/files/v3/1/b/x", "/files/v2/notdigits", "/files/v2/1250000000"):
        resp = requests.get(v2.base_url + url, timeout=10)
        assert 400 <= resp.status_code < 500
    resp = v2.http.get(v2.target.url("/d/") + "?op=stat", headers={"Authorization": "\u00e9\u00e9"}, timeout=10)
    _assert_4xx_envelope(resp)


def test_wrong_method_and_bad_content_length(v2: Client, emulator: CosEmulator) -> None:
    resp = v2.http.get(
        v2.target.url("/d/x") + "?op=upload",
        headers={"Authorization": v2.signer.multi(DEMO.appid, DEMO.bucket)},
        timeout=10,
    )
    _assert_4xx_envelope(resp)
    answer = raw_http(emulator.url, b"POST /files/v2/1/b/x HTTP/1.1\r\nHost: x\r\nContent-Length: -4\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")
    answer = raw_http(emulator.url, b"POST /files/v2/1/b/x HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")
    answer = raw_http(
        emulator.url, b"POST /files/v2/1/b/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 400")
    assert v2.stat("/d/").is_folder


def test_absolute_form_request_line(v2: Client, emulator: CosEmulator) -> None:
    sig = v2.signer.multi(DEMO.appid, DEMO.bucket)
    request = (
        f"GET http://gz.file.myqcloud.com/files/v2/{DEMO.appid}/{DEMO.bucket}/d/?op=stat HTTP/1.1\r\n"
        f"Host: gz.file.myqcloud.com\r\nAuthorization: {sig}\r\nConnection: close\r\n\r\n"
    ).encode()
    answer = raw_http(emulator.url, request)
    assert answer.startswith(b"HTTP/1.1 200") and b'"code":0' in answer


def test_chunked_request_body(v2: Client, emulator: CosEmulator) -> None:
    data = payload(700_000, seed=9)
    form = encode_form([("op", "upload"), ("insertOnly", "0")], "filecontent")
    body = form.body(data)

    def chunks():  # requests sends a generator body with Transfer-Encoding: chunked
        for i in range(0, len(body), 100_000):
            yield body[i : i + 100_000]

    resp = v2.http.post(
        v2.target.url("/d/chunked.bin"),
        data=chunks(),
        timeout=10,
        headers={"Authorization": v2.signer.multi(DEMO.appid, DEMO.bucket), "Content-Type": form.content_type},
    )
    assert resp.json()["code"] == 0, resp.text
    assert stored_bytes(emulator.data_dir, "/d/chunked.bin") == data


def test_keep_alive_and_no_nagle_stall(v2: Client) -> None:
    v2.upload("/d/k.txt", b"k")
    req = v2.d.prepare_stat("/d/k.txt")
    v2.send(req)
    started = time.monotonic()
    for _ in range(50):
        resp = v2.send(req)
        assert resp.status_code == 200
    per_request = (time.monotonic() - started) / 50
    assert per_request < 0.03, per_request  # a 40 ms delayed-ACK stall would show here
    data = payload(MiB)
    started = time.monotonic()
    for i in range(10):
        v2.upload(f"/d/p{i}", data)
    assert (time.monotonic() - started) / 10 < 0.2


def test_access_log_has_no_secrets(v2: Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="airflow_provider_cos.emulator")
    sig = v2.signer.multi(DEMO.appid, DEMO.bucket)
    v2.http.get(v2.target.url("/d/") + "?op=stat&sign=" + quote(sig, safe=""), timeout=10)
    v2.send(v2.d.prepare_stat("/d/"), signature=sig)
    # a malformed request line is logged by the stdlib handler: still redacted
    raw_http(v2.base_url, f"GET /d/?op=stat&sign={quote(sig, safe='')} bad request line\r\n\r\n".encode())
    text = caplog.text
    assert "Bad request" in text
    assert "/d/" in text
    for secret in (sig, quote(sig, safe=""), sig[:30], DEMO.secret_key):
        assert secret not in text


def test_server_survives_client_disconnects(v2: Client, emulator: CosEmulator) -> None:
    import socket

    for partial in (
        b"POST /files/v2/1250000000/examplebucket/d/x HTTP/1.1\r\nContent-Length: 1000\r\n\r\nabc",
        b"GET /files/v2/1250000000/exam",
        b"\x00\x01\x02 garbage\r\n\r\n",
    ):
        with socket.create_connection(("127.0.0.1", emulator.port), timeout=10) as sock:
            sock.sendall(partial)
            sock.shutdown(socket.SHUT_WR)  # the client goes away mid-request
            with contextlib.suppress(ConnectionResetError):
                while sock.recv(65536):  # until the server is done with it and closes (an event, not a sleep)
                    pass
    assert emulator.stats.internal_errors == 0
    assert v2.stat("/d/").is_folder


def test_no_500_for_control_and_ops_after_all_that(v2: Client) -> None:
    resp = v2.send(CosRequest("stat", "GET", "/d/", query=(("op", "stat"),)))
    assert resp.status_code == 200
