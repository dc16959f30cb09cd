"""Request-body reading for the emulator: Content-Length or chunked framing, and the form decoding.

Bodies are read in :data:`READ_CHUNK` pieces. Multipart bodies go through the protocol's streaming
:class:`~airflow_provider_cos.protocol.multipart.MultipartDecoder`; the binary ``filecontent`` part is
streamed (never held in memory) either into a :class:`Sink` that the file-start hook returns (a slice
written straight into its session's data file) or else to a spool file in the data directory. Text
fields are bounded. JSON and
url-encoded bodies are accepted for every op. Field names are lower-cased (COS clients differ in case).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl

from airflow_provider_cos.protocol.errors import CosInvalidRequestError
from airflow_provider_cos.protocol.multipart import (
    MultipartDecoder,
    PartData,
    PartEnd,
    PartStart,
    parse_boundary,
)

READ_CHUNK = 128 * 1024  # measured: MultipartDecoder.feed runs ~10x slower on 1 MiB pieces (fresh mmap allocations)
DIRECT_CHUNK = 1024 * 1024  # socket reads straight into a reused per-thread buffer for slice data
MAX_TEXT_BYTES = 8 * 1024 * 1024
MAX_DRAIN = 256 * 1024 * 1024
FILE_FIELD = "filecontent"


class BadRequest(Exception):
    """The request cannot be understood. ``code`` is a COS error code; ``close`` asks to drop the link."""

    def __init__(self, detail: str, *, code: int = -61, close: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.close = close


class _Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...
    def readline(self, size: int = -1, /) -> bytes: ...
    def readinto(self, buffer: memoryview, /) -> int | None: ...


class BodyReader:
    """Reads exactly the request body (Content-Length or chunked) from a buffered socket file."""

    def __init__(self, rfile: _Readable, *, length: int | None, chunked: bool) -> None:
        self._rfile = rfile
        self._remaining = length or 0
        self._chunked = chunked
        self._chunk_left = 0
        self._eof = not chunked and not self._remaining
        self.consumed = 0

    @property
    def exhausted(self) -> bool:
        return self._eof

    def read(self, n: int = READ_CHUNK) -> bytes:
        if self._eof:
            return b""
        data = self._read_chunked(n) if self._chunked else self._read_plain(n)
        self.consumed += len(data)
        return data

    def readinto(self, view: memoryview) -> int:
        """Read up to ``len(view)`` (> 0) body bytes into ``view``; raises at a premature end."""
        if self._eof:
            raise BadRequest("body ended early", close=True)
        if self._chunked:
            data = self._read_chunked(len(view))
            if not data:
                raise BadRequest("body ended early", close=True)
            n = len(data)
            view[:n] = data
        else:
            n = self._rfile.readinto(view[: min(len(view), self._remaining)]) or 0
            if not n:
                raise BadRequest("connection closed before the end of the body", close=True)
            self._remaining -= n
            if self._remaining == 0:
                self._eof = True
        self.consumed += n
        return n

    def _read_plain(self, n: int) -> bytes:
        data = self._rfile.read(min(n, self._remaining))
        if not data:
            raise BadRequest("connection closed before the end of the body", close=True)
        self._remaining -= len(data)
        if self._remaining == 0:
            self._eof = True
        return data

    def _read_line(self) -> bytes:
        line = self._rfile.readline(1026)
        if not line.endswith(b"\n"):
            raise BadRequest("malformed chunked body", close=True)
        return line

    def _read_chunked(self, n: int) -> bytes:
        if self._chunk_left == 0:
            size_text = self._read_line().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise BadRequest("malformed chunk size", close=True) from None
            if size < 0:
                raise BadRequest("malformed chunk size", close=True)
            if size == 0:
                while self._read_line().strip():  # trailers
                    pass
                self._eof = True
                return b""
            self._chunk_left = size
        data = self._rfile.read(min(n, self._chunk_left))
        if not data:
            raise BadRequest("connection closed inside a chunk", close=True)
        self._chunk_left -= len(data)
        if self._chunk_left == 0 and self._rfile.read(2) != b"\r\n":
            raise BadRequest("chunk not followed by CRLF", close=True)
        return data

    def drain(self) -> bool:
        """Discard the rest of the body (bounded); True if the connection can be kept."""
        try:
            while not self._eof and self.consumed < MAX_DRAIN:
                if not self.read():
                    break
        except BadRequest:
            return False
        return self._eof


class Sink(Protocol):
    """Where the binary part of a request goes: a spool file, a slice's place in its session's data file,
    or nowhere (a request a fault answers). ``expected`` is the exact length when known beforehand (the
    bytes are then read straight from the socket), else None."""

    @property
    def expected(self) -> int | None: ...

    def write(self, data: bytes | bytearray | memoryview, /) -> None: ...
    def abort(self) -> None: ...


class SpoolSink:
    """A spool file in the data directory's ``tmp/`` (removed by :meth:`abort` unless moved away)."""

    expected: int | None = None

    def __init__(self, tmp_dir: Path) -> None:
        self.path = tmp_dir / f"spool-{uuid.uuid4().hex}"
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def abort(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


class NullSink:
    """Discards the bytes (the request is answered by a fault or refused: it has no effect)."""

    expected: int | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def abort(self) -> None:
        pass


@dataclass
class Spooled:
    """The binary part of a request as written into ``sink``; hashes only when asked for.
    :meth:`discard` aborts the sink (removes a spool file that the request did not move away)."""

    sink: Sink
    length: int
    sha1: str | None
    md5: str | None
    crc64: str | None = None

    @property
    def path(self) -> Path | None:
        """The spool file, when the part was spooled."""
        return self.sink.path if isinstance(self.sink, SpoolSink) else None

    def discard(self) -> None:
        self.sink.abort()


@dataclass
class RequestBody:
    fields: dict[str, str]
    upload: Spooled | None
    raw: bytes = b""  # a small XML body (CompleteMultipartUpload)


def read_raw(reader: BodyReader, sink: Callable[[], Sink], hashers: dict[str, Any]) -> RequestBody:
    """A body that is the data itself (XML PutObject/UploadPart): into the sink chosen when it starts,
    hashed with ``hashers`` (``md5``, ``crc64``, ``sha1``) on the way."""
    target = sink()
    length = 0
    try:
        buf = _direct_buffer()
        view = memoryview(buf)
        while not reader.exhausted:
            n = reader.readinto(view)
            piece = view[:n]
            target.write(piece)
            for h in hashers.values():
                h.update(piece)
            length += n
        if isinstance(target, SpoolSink):
            target.close()
    except BaseException:
        target.abort()
        raise

    def digest(name: str) -> str | None:
        h = hashers.get(name)
        if h is None:
            return None
        return str(h.decimal()) if name == "crc64" else str(h.hexdigest())

    return RequestBody({}, Spooled(target, length, digest("sha1"), digest("md5"), digest("crc64")))


def read_small(reader: BodyReader, limit: int) -> bytes:
    """A whole small body (at most ``limit`` bytes, else :class:`BadRequest`)."""
    raw = bytearray()
    while True:
        chunk = reader.read()
        if not chunk:
            return bytes(raw)
        raw += chunk
        if len(raw) > limit:
            raise BadRequest(f"body larger than {limit} bytes")


#: Called when the binary part starts, with the text fields seen so far and the bytes read so far;
#: returns the :class:`Sink` to write the part into.
FileStartHook = Callable[[dict[str, str], int], Sink]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return "" if value is None else str(value)


def read_body(reader: BodyReader, content_type: str, on_file_start: FileStartHook) -> RequestBody:
    """Decode the body by its Content-Type. Raises :class:`BadRequest` for anything malformed."""
    main = content_type.split(";", 1)[0].strip().lower()
    if main == "multipart/form-data":
        return _read_multipart(reader, content_type, on_file_start)
    raw = bytearray()
    while True:
        chunk = reader.read()
        if not chunk:
            break
        raw += chunk
        if len(raw) > MAX_TEXT_BYTES:
            raise BadRequest("body too large for a non-multipart request")
    if not raw.strip():
        return RequestBody({}, None)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("body is not UTF-8") from None
    if main == "application/x-www-form-urlencoded":
        return RequestBody({k.lower(): v for k, v in parse_qsl(text, keep_blank_values=True)}, None)
    try:
        data = json.loads(text)
    except ValueError:
        raise BadRequest("body is neither multipart nor a JSON object") from None
    except RecursionError:
        raise BadRequest("JSON body nested too deeply") from None
    if not isinstance(data, dict):
        raise BadRequest("JSON body must be an object")
    return RequestBody({str(k).lower(): _text(v) for k, v in data.items()}, None)


class _Feeder:
    """Feeds body bytes to the decoder. Until the ``filecontent`` part starts, input is fed one line at
    a time (split after each CRLF, never inside one), so that when the decoder reports that part's start
    it holds no unconsumed byte: its data can then be read straight from the socket (see
    :func:`_read_direct`) and the decoder resumes at the delimiter that follows. ``buf[pos:]`` is read
    but not yet fed."""

    def __init__(self, reader: BodyReader) -> None:
        self.reader = reader
        self.buf = b""
        self.pos = 0
        self.line_mode = True

    @property
    def pending(self) -> int:
        return len(self.buf) - self.pos

    def next_piece(self) -> bytes | memoryview | None:
        """The next piece to feed, or None at the end of the body."""
        if not self.pending:
            chunk = self.reader.read()
            if not chunk:
                return None
            self.buf, self.pos = chunk, 0
        start = self.pos
        end = len(self.buf)
        if self.line_mode:
            idx = self.buf.find(b"\r\n", start)
            if idx >= 0:
                end = idx + 2
            elif self.buf.endswith(b"\r"):  # keep a lone CR with what follows: a CRLF is never split
                if end - start > 1:
                    end -= 1
                else:
                    more = self.reader.read()
                    if more:
                        self.buf, self.pos = b"\r" + more, 0
                        return self.next_piece()
        self.pos = end
        if start == 0 and end == len(self.buf):
            return self.buf
        return memoryview(self.buf)[start:end]


_LOCAL = threading.local()


def _direct_buffer() -> bytearray:
    buf = getattr(_LOCAL, "buf", None)
    if buf is None:
        buf = _LOCAL.buf = bytearray(DIRECT_CHUNK)
    return buf


def _read_direct(feeder: _Feeder, delim: bytes, length: int, sink: Sink, hashers: list[Any]) -> None:
    """Read the ``length`` data bytes of the file part from the socket into ``sink`` (no decoder copies),
    checking that the delimiter does not occur inside them and follows them; afterwards the feeder's
    pending bytes start at that delimiter."""
    keep = len(delim) - 1
    tail = b""

    def take(obj: bytes | bytearray, start: int, end: int) -> None:
        nonlocal tail
        if obj.find(delim, start, end) >= 0 or (tail + obj[start : min(end, start + keep)]).find(delim) >= 0:
            raise BadRequest("filecontent is shorter than the slice", code=-4021, close=True)
        view = memoryview(obj)[start:end]
        sink.write(view)
        for h in hashers:
            h.update(view)
        tail = (tail + obj[max(start, end - keep) : end])[-keep:]

    need = length
    if feeder.pending:
        n = min(need, feeder.pending)
        take(feeder.buf, feeder.pos, feeder.pos + n)
        feeder.pos += n
        need -= n
    buf = _direct_buffer()
    view = memoryview(buf)
    while need:
        n = feeder.reader.readinto(view[: min(len(buf), need)])
        take(buf, 0, n)
        need -= n
    after = feeder.buf[feeder.pos :]
    while len(after) < len(delim):
        more = feeder.reader.read(len(delim) - len(after))
        if not more:
            break
        after += more
    if not after.startswith(delim) or (tail + after[: len(delim)]).find(delim) != len(tail):
        raise BadRequest("filecontent is longer than the slice", code=-4021, close=True)
    feeder.buf, feeder.pos = after, 0


def _read_multipart(reader: BodyReader, content_type: str, on_file_start: FileStartHook) -> RequestBody:
    """Text fields into ``fields``; the one ``filecontent`` part into the sink the hook chooses, straight
    from the socket when the sink knows its length, else through the decoder."""
    try:
        boundary = parse_boundary(content_type)
    except CosInvalidRequestError as exc:
        raise BadRequest(exc.message) from None
    decoder = MultipartDecoder(boundary)
    delim = b"\r\n--" + boundary.encode("latin-1")
    feeder = _Feeder(reader)
    fields: dict[str, str] = {}
    text_total = 0
    current: str | None = None
    text_buf = bytearray()
    sink: Sink | None = None
    length = 0
    hashers: list[Any] = []
    sha1: Any = None
    md5: Any = None
    upload: Spooled | None = None
    try:
        while True:
            piece = feeder.next_piece()
            try:
                events = decoder.feed(piece) if piece is not None else []  # type: ignore[arg-type]
                if piece is None:
                    decoder.close()
            except CosInvalidRequestError as exc:
                raise BadRequest(f"malformed multipart body: {exc.message}") from None
            for i, event in enumerate(events):
                if isinstance(event, PartStart):
                    current = event.name.lower()
                    text_buf = bytearray()
                    if current != FILE_FIELD:
                        continue
                    if sink is not None:
                        raise BadRequest("more than one filecontent part")
                    feeder.line_mode = False
                    sink = on_file_start(fields, reader.consumed - feeder.pending)
                    sha1 = hashlib.sha1() if fields.get("op", "") in ("upload", "") else None
                    md5 = hashlib.md5() if "datamd5" in fields else None
                    hashers = [h for h in (sha1, md5) if h is not None]
                    if sink.expected is not None and i == len(events) - 1:
                        # the decoder holds nothing: the data follows in the stream
                        _read_direct(feeder, delim, sink.expected, sink, hashers)
                        length = sink.expected
                elif isinstance(event, PartData):
                    if current == FILE_FIELD:
                        assert sink is not None
                        sink.write(event.data)
                        length += len(event.data)
                        for h in hashers:
                            h.update(event.data)
                    else:
                        text_total += len(event.data)
                        if text_total > MAX_TEXT_BYTES:
                            raise BadRequest("text fields too large")
                        text_buf += event.data
                elif isinstance(event, PartEnd):
                    if current == FILE_FIELD:
                        assert sink is not None
                        if isinstance(sink, SpoolSink):
                            sink.close()
                        upload = Spooled(
                            sink, length, sha1.hexdigest() if sha1 else None, md5.hexdigest() if md5 else None
                        )
                    elif current is not None:
                        try:
                            fields.setdefault(current, text_buf.decode("utf-8"))
                        except UnicodeDecodeError:
                            raise BadRequest(f"field {current!r} is not UTF-8") from None
                    current = None
            if piece is None:
                break
        if upload is None and sink is not None:
            raise BadRequest("filecontent part not terminated")
        return RequestBody(fields, upload)
    except BaseException:
        if sink is not None:
            sink.abort()
        raise
