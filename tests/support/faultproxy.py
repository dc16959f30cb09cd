"""A small threaded HTTP/1.1 proxy for fault tests: real sockets, never mocks.

``FaultProxy(upstream_url)`` listens on ``127.0.0.1:0`` and forwards each client connection to the
upstream over its own connection, one request at a time (keep-alive, no pipelining — what ``requests``
does). It parses just enough HTTP (request/response heads, ``Content-Length``) to know where each
request and answer ends, so faults can hit the N-th matching request:

* ``reset``: forward ``after_bytes`` of the request (head + part of the body), then close the client
  socket with ``SO_LINGER 0`` (a TCP RST) — a connection reset mid-body;
* ``stall``: forward the request, then send nothing back (the client's read timeout fires); the
  connection is closed after ``stall_seconds`` or when the proxy stops;
* ``truncate``: forward the request, then only the answer's head and half of its body, then close.
* ``reset_answer``: forward the request, then the answer's head and half of its body, then a TCP RST
  (a connection reset mid-answer, e.g. in the middle of a downloaded range).
* ``corrupt``: forward the request and its answer whole, but with the body byte at offset ``after_bytes``
  (counted from the start of the body, not of the head; default 64 KiB: inside the data of a slice or
  part) inverted on the way, so the server stores and hashes other bytes than the client sent (same
  length). The record's ``flipped_at`` says which body offset was flipped (``None``: the body was shorter).

Bounded: at most ``max_connections`` concurrent connections, daemon threads, and the proxy stops
itself after ``lifetime`` seconds. It also records every request (start/end times) so tests can assert
that no two slices overlapped (:attr:`max_concurrent`).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Literal
from urllib.parse import urlsplit

Action = Literal["reset", "stall", "truncate", "reset_answer", "corrupt"]
MAX_HEAD = 64 * 1024
PEEK = 4096


@dataclass
class ProxyFault:
    """Fire ``action`` on the ``nth`` (1-based) request whose head or first 4 KiB of body contain
    ``match`` (``None`` = every request), ``times`` times in a row."""

    action: Action
    nth: int = 1
    match: bytes | None = None
    times: int = 1
    after_bytes: int = 64 * 1024
    stall_seconds: float = 30.0
    seen: int = 0
    fired: int = 0

    def wants(self, sample: bytes) -> bool:
        if self.fired >= self.times:
            return False
        if self.match is not None and self.match not in sample:
            return False
        self.seen += 1
        if self.seen >= self.nth:
            self.fired += 1
            return True
        return False


@dataclass
class RequestRecord:
    number: int
    method: str
    target: str
    sample: bytes = field(repr=False)
    started: float
    ended: float | None = None
    fault: Action | None = None
    flipped_at: int | None = None  # ``corrupt``: the body offset whose byte was inverted


class _Closed(Exception):
    pass


def _read_head(f: IO[bytes]) -> bytes | None:
    lines = []
    total = 0
    while True:
        line = f.readline(MAX_HEAD)
        if not line:
            if lines:
                raise _Closed("EOF inside a head")
            return None
        if not lines and line in (b"\r\n", b"\n"):
            continue
        lines.append(line)
        total += len(line)
        if total > MAX_HEAD:
            raise _Closed("head too large")
        if line in (b"\r\n", b"\n"):
            return b"".join(lines)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
        if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
            raise _Closed("chunked bodies are not supported by the fault proxy")
    return 0


def _flip(chunk: bytes, start: int, at: int | None) -> bytes:
    """``chunk`` (the body bytes from offset ``start``) with the byte at body offset ``at`` inverted, if
    that offset falls inside it."""
    if at is None or not start <= at < start + len(chunk):
        return chunk
    i = at - start
    return chunk[:i] + bytes([chunk[i] ^ 0xFF]) + chunk[i + 1 :]


def _rst(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class FaultProxy:
    def __init__(self, upstream_url: str, *, max_connections: int = 64, lifetime: float = 300.0) -> None:
        parts = urlsplit(upstream_url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lock = threading.Lock()
        self._faults: list[ProxyFault] = []
        self._sockets: set[socket.socket] = set()
        self._stopped = threading.Event()
        self._lifetime = lifetime
        self._counter = 0
        self._in_flight = 0
        self.max_concurrent = 0
        self.records: list[RequestRecord] = []
        self._thread = threading.Thread(target=self._serve, name="faultproxy", daemon=True)
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True

    # ---- lifecycle
    def start(self) -> FaultProxy:
        self._thread.start()
        self._timer.start()
        return self

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopped.set()
        self._timer.cancel()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            socks = list(self._sockets)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    # ---- configuration
    def add(self, fault: ProxyFault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset_stats(self) -> None:
        with self._lock:
            self.records.clear()
            self.max_concurrent = 0

    @property
    def faults_fired(self) -> int:
        with self._lock:
            return sum(f.fired for f in self._faults)

    def requests_matching(self, needle: bytes) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self.records if needle in r.sample]

    # ---- internals
    def _serve(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            if not self._slots.acquire(timeout=5):
                _rst(client)
                continue
            threading.Thread(target=self._connection, args=(client,), daemon=True).start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def _begin(self, head: bytes, peek: bytes) -> tuple[RequestRecord, ProxyFault | None]:
        sample = head + peek
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        with self._lock:
            self._counter += 1
            fault = next((f for f in self._faults if f.wants(sample)), None)
            record = RequestRecord(
                self._counter,
                request_line[0],
                request_line[1] if len(request_line) > 1 else "",
                sample,
                time.monotonic(),
                fault=fault.action if fault else None,
            )
            self.records.append(record)
            self._in_flight += 1
            self.max_concurrent = max(self.max_concurrent, self._in_flight)
        return record, fault

    def _end(self, record: RequestRecord) -> None:
        with self._lock:
            record.ended = time.monotonic()
            self._in_flight -= 1

    def _connection(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        self._track(client)
        try:
            upstream = socket.create_connection(self.upstream, timeout=60)
            upstream.settimeout(None)
            self._track(upstream)
            cfile = client.makefile("rb")
            ufile = upstream.makefile("rb")
            while not self._stopped.is_set():
                head = _read_head(cfile)
                if head is None:
                    return
                length = _content_length(head)
                peek = cfile.read(min(PEEK, length)) if length else b""
                record, fault = self._begin(head, peek)
                try:
                    if fault is not None and fault.action == "reset":
                        budget = max(0, fault.after_bytes - len(head) - len(peek))
                        upstream.sendall(head + peek[: max(0, fault.after_bytes - len(head))])
                        remaining = length - len(peek)
                        while budget > 0 and remaining > 0:
                            chunk = cfile.read(min(65536, budget, remaining))
                            if not chunk:
                                break
                            upstream.sendall(chunk)
                            budget -= len(chunk)
                            remaining -= len(chunk)
                        _rst(client)
                        _rst(upstream)
                        return
                    flip = fault.after_bytes if fault is not None and fault.action == "corrupt" else None
                    upstream.sendall(head)
                    sent = 0
                    chunk = peek
                    while True:
                        upstream.sendall(_flip(chunk, sent, flip))
                        if flip is not None and sent <= flip < sent + len(chunk):
                            record.flipped_at = flip
                        sent += len(chunk)
                        if sent >= length:
                            break
                        chunk = cfile.read(min(262144, length - sent))
                        if not chunk:
                            raise _Closed("client closed mid-body")
                    rhead = _read_head(ufile)
                    if rhead is None:
                        raise _Closed("upstream closed without an answer")
                    rlength = 0 if head.startswith(b"HEAD ") else _content_length(rhead)  # HEAD: no body
                    if fault is not None and fault.action == "stall":
                        self._stopped.wait(fault.stall_seconds)
                        return
                    if fault is not None and fault.action in ("truncate", "reset_answer"):
                        body = ufile.read(rlength)
                        client.sendall(rhead + body[: len(body) // 2])
                        if fault.action == "reset_answer":
                            _rst(client)
                            return
                        with contextlib.suppress(OSError):
                            client.shutdown(socket.SHUT_RDWR)
                        return
                    client.sendall(rhead + (ufile.read(rlength) if rlength else b""))
                    if b"connection: close" in rhead.lower():
                        return
                finally:
                    self._end(record)
        except (OSError, _Closed, ValueError):
            return
        finally:
            for s in (client, upstream):
                if s is not None:
                    self._untrack(s)
                    with contextlib.suppress(OSError):
                        s.close()
            self._slots.release()
