"""The HTTP layer and the :class:`CosEmulator` context manager.

Stack: stdlib ``ThreadingHTTPServer`` (one daemon thread per connection), HTTP/1.1 keep-alive,
``TCP_NODELAY`` and every response written with one ``sendall`` (see docs/emulator.md for the
measurements behind this choice). Binds 127.0.0.1 only by default. The access log (logger
``airflow_provider_cos.emulator``, DEBUG) never shows the ``Authorization`` header or the ``sign``
query parameter.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from airflow_provider_cos.emulator.app import CosApp
from airflow_provider_cos.emulator.config import (
    DEMO,
    BucketConfig,
    EmulatorSettings,
    check_bound_buckets,
    validate_custom_domains,
)
from airflow_provider_cos.emulator.faults import EmulatorStats, FaultBook, FaultRule, StatsCounter
from airflow_provider_cos.emulator.httpio import BodyReader
from airflow_provider_cos.emulator.replies import DropConnection, Exchange, Reply, envelope, error_reply
from airflow_provider_cos.protocol.errors import CosConfigError

log = logging.getLogger("airflow_provider_cos.emulator")
_SIGN_RE = re.compile(r"([?&]sign=)[^&]*", re.IGNORECASE)


def redact(target: str) -> str:
    """The request target with any ``sign`` value replaced, for logs."""
    return _SIGN_RE.sub(r"\1<redacted>", target)


_MAX_LINE = 65536
_NON_ASCII = re.compile(rb"[\x80-\xff]")
_MAX_HEADERS = 100


def _read_headers(rfile: Any) -> http.client.HTTPMessage:
    """The request headers, parsed without ``email.parser`` (the stdlib's ``parse_headers`` spends
    ~0.2 ms per request there and, for a multipart Content-Type, compiles a regex for the per-request
    boundary: measured with py-spy as the largest per-slice cost after the body). Same limits as the
    stdlib: lines over 64 KiB or more than 100 headers raise; folded lines continue the previous value;
    other lines without a colon are ignored."""
    msg = http.client.HTTPMessage()
    pairs: list[list[str]] = []
    while True:
        line = rfile.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise http.client.LineTooLong("header line")
        if line in (b"\r\n", b"\n", b""):
            break
        if len(pairs) >= _MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {_MAX_HEADERS} headers")
        text = line.decode("iso-8859-1").rstrip("\r\n")
        if text[:1] in (" ", "\t") and pairs:
            pairs[-1][1] += " " + text.strip()
            continue
        name, sep, value = text.partition(":")
        if sep and name and name == name.strip():
            pairs.append([name, value.strip()])
    for name, value in pairs:
        msg[name] = value
    return msg


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cos-emulator"
    timeout = 300  # idle keep-alive connections are closed after this many seconds
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, add=False)

    def parse_request(self) -> bool:
        """The stdlib's ``parse_request`` (CPython 3.11) with :func:`_read_headers` for the headers."""
        self.command = None  # type: ignore[assignment]
        self.request_version = version = self.default_request_version
        self.close_connection = True
        raw_line: bytes = self.raw_requestline  # type: ignore[attr-defined]
        if not raw_line.isascii():  # raw UTF-8 in the target: take it as the bytes it is (percent-encoded)
            raw_line = _NON_ASCII.sub(lambda m: b"%%%02X" % m[0][0], raw_line)
        requestline = str(raw_line, "ascii").rstrip("\r\n")
        self.requestline = requestline
        words = requestline.split()
        if len(words) == 0:
            return False
        if len(words) >= 3:
            version = words[-1]
            try:
                if not version.startswith("HTTP/"):
                    raise ValueError
                base_version_number = version.split("/", 1)[1]
                parts = base_version_number.split(".")
                if len(parts) != 2 or any(not p.isdigit() or len(p) > 10 for p in parts):
                    raise ValueError
                version_number = int(parts[0]), int(parts[1])
            except (ValueError, IndexError):
                self.send_error(HTTPStatus.BAD_REQUEST, f"Bad request version ({version!r})")
                return False
            if version_number >= (1, 1) and self.protocol_version >= "HTTP/1.1":
                self.close_connection = False
            if version_number >= (2, 0):
                self.send_error(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"Invalid HTTP version ({base_version_number})")
                return False
            self.request_version = version
        if not 2 <= len(words) <= 3:
            self.send_error(HTTPStatus.BAD_REQUEST, f"Bad request syntax ({requestline!r})")
            return False
        command, path = words[:2]
        if len(words) == 2:
            self.close_connection = True
            if command != "GET":
                self.send_error(HTTPStatus.BAD_REQUEST, f"Bad HTTP/0.9 request type ({command!r})")
                return False
        self.command, self.path = command, path
        if self.path.startswith("//"):
            self.path = "/" + self.path.lstrip("/")
        try:
            self.headers = _read_headers(self.rfile)
        except http.client.LineTooLong as err:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long", str(err))
            return False
        except http.client.HTTPException as err:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers", str(err))
            return False
        conntype = self.headers.get("Connection", "").lower()
        if conntype == "close":
            self.close_connection = True
        elif conntype == "keep-alive" and self.protocol_version >= "HTTP/1.1":
            self.close_connection = False
        expect = self.headers.get("Expect", "")
        if (
            expect.lower() == "100-continue"
            and self.protocol_version >= "HTTP/1.1"
            and self.request_version >= "HTTP/1.1"
        ):
            return self.handle_expect_100()
        return True

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), redact(format % args))

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # our own access log line is written in _serve

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors found by the stdlib parser (bad request line, huge headers, ...) as a COS envelope."""
        self.log_error("code %d, message %s", code, message)
        self.close_connection = True
        reply = envelope(-61, "ERROR_CGI_PARAM_INVALID", {"detail": message or ""}, status=code)
        self._send(reply, close=True)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def _serve(self) -> None:
        started = time.monotonic()
        headers = {k.lower(): v for k, v in self.headers.items()}
        codings = [c.strip().lower() for c in headers.get("transfer-encoding", "").split(",") if c.strip()]
        if codings not in ([], ["chunked"]):  # gzip etc. would be silently stored compressed
            self._send(
                error_reply(
                    -61,
                    f"Transfer-Encoding {headers['transfer-encoding']!r} is not supported (only chunked)",
                    status=501,
                ),
                close=True,
            )
            return
        chunked = bool(codings)
        length: int | None = None
        reply: Reply
        if not chunked:
            try:
                length = int(headers.get("content-length", "0") or 0)
                if length < 0:
                    raise ValueError
            except ValueError:
                self._send(error_reply(-61, "bad Content-Length"), close=True)
                return
        reader = BodyReader(self.rfile, length=length, chunked=chunked)
        exchange = Exchange(self.command, self.path, headers, reader)
        try:
            reply = self.server.app.handle(exchange)
        except DropConnection:
            log.info("%s %s -> dropped (fault)", self.command, redact(self.path.split("?", 1)[0]))
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        except (ConnectionError, TimeoutError):
            self.close_connection = True
            return
        except Exception:
            log.exception("emulator bug while serving %s %s", self.command, redact(self.path))
            self.server.app.stats.internal_error()
            reply = error_reply(-181, "internal emulator error", status=500)
        close = reply.close
        if not close and not reader.exhausted and not reader.drain():  # no point reading what is dropped
            close = True
        self._send(reply, close=close)
        log.debug(
            "%s %s -> %d (%.1f ms)", self.command, redact(self.path), reply.status, (time.monotonic() - started) * 1000
        )

    def _send(self, reply: Reply, *, close: bool) -> None:
        if close or self.close_connection:
            reply.close = True
            self.close_connection = True
        try:
            self.wfile.write(reply.to_bytes(keep_alive=not reply.close))
        except OSError:
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: CosApp) -> None:
        self.app = app
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, conn: socket.socket, *, add: bool) -> None:
        with self._conns_lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
            self._conns.clear()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection error from %s", client_address, exc_info=True)


class EmulatorPortInUseError(OSError):
    """The port the caller asked for could not be bound."""


class CosEmulator:
    """A local COS JSON API server (``/files/v1`` and ``/files/v2``) on 127.0.0.1.

    ``with CosEmulator(data_dir=..., port=0) as emu: emu.url``. State lives in ``data_dir`` and survives
    :meth:`stop`/:meth:`start` (the same port is reused when possible). Without ``data_dir`` a temporary
    directory is used and removed by :meth:`close` / leaving the ``with`` block. ``extra_buckets`` adds
    more buckets (each with its own credential pair). ``custom_domains`` binds XML API custom domains to
    served buckets (``{"files.example.com": "examplebucket-1250000000"}``, ``settings.custom_domains``).
    Faults, settings and stats belong to this object and survive restarts.
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        appid: str = DEMO.appid,
        bucket: str = DEMO.bucket,
        secret_id: str = DEMO.secret_id,
        secret_key: str = DEMO.secret_key,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        extra_buckets: tuple[BucketConfig, ...] | list[BucketConfig] = (),
        settings: EmulatorSettings | None = None,
        custom_domains: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.buckets: list[BucketConfig] = [BucketConfig(appid, bucket, secret_id, secret_key), *extra_buckets]
        self.settings = settings or EmulatorSettings()
        if custom_domains is not None:
            try:
                domains = validate_custom_domains(custom_domains)
                check_bound_buckets(domains, [f"{cfg.bucket}-{cfg.appid}" for cfg in self.buckets])
            except ValueError as exc:
                raise CosConfigError(f"custom_domains: {exc}") from None
            self.settings.custom_domains = domains
        self._owns_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="cos-emulator-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._clock = clock  # wall-clock seconds for session expiry (tests inject a fake one)
        self._faults = FaultBook()
        self._stats = StatsCounter()
        self.host = host
        self._port = port
        self._port_required = bool(port)  # a port the caller asked for: never silently replaced
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def bucket(self) -> BucketConfig:
        return self.buckets[0]

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    def xml_host(self, bucket: BucketConfig | None = None) -> str:
        """The ``Host`` header that addresses ``bucket`` (default: the first) through the XML API."""
        cfg = bucket or self.bucket
        return f"{cfg.bucket}-{cfg.appid}.cos.{self.settings.xml_region}.myqcloud.com"

    def xml_help(self) -> str:
        """One line on how to address the XML API of this emulator."""
        cfg = self.bucket
        return (
            f"XML API at {self.url}: send 'Host: {self.xml_host()}', or use path style "
            f"{self.url}/{cfg.bucket}-{cfg.appid}/<key>, or plain {self.url}/<key> for the default bucket "
            f"{cfg.bucket}-{cfg.appid}{self._domains_help()}; "
            f"JSON API at {self.url}/files/v1|v2/{cfg.appid}/{cfg.bucket}/"
        )

    def _domains_help(self) -> str:
        domains = self.settings.custom_domains
        if not domains:
            return ""
        return ", or a custom domain: " + ", ".join(f"'Host: {d}' ({b})" for d, b in sorted(domains.items()))

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> CosEmulator:
        if self._server is not None:
            return self
        app = CosApp(
            self.data_dir, self.buckets, self.settings, self._faults, self._stats, lambda: self.url, self._clock
        )
        server: _Server | None = None
        last_error: OSError | None = None
        if self._port:
            for _ in range(50):  # a restart may find its old port in TIME_WAIT for a moment
                try:
                    server = _Server((self.host, self._port), app)
                    break
                except OSError as exc:
                    last_error = exc
                    time.sleep(0.1)
        if server is None:
            if self._port_required:
                raise EmulatorPortInUseError(
                    f"cannot listen on {self.host}:{self._port}: {last_error.strerror if last_error else 'busy'}"
                    " (is another emulator running? use port 0 for a free port)"
                )
            server = _Server((self.host, 0), app)  # a port picked earlier from 0: any free one will do
        self._server = server
        self._port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"cos-emulator-{self._port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        server.app.close()

    def close(self) -> None:
        """Stop and, if the data directory was created by this object, remove it."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> CosEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ---- faults and stats
    def add_fault(self, rule: FaultRule) -> None:
        self._faults.add(rule)

    def clear_faults(self) -> None:
        self._faults.clear()

    @property
    def faults(self) -> list[FaultRule]:
        return self._faults.active()

    @property
    def stats(self) -> EmulatorStats:
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        self._stats.reset()
