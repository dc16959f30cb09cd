"""The one multipart/form-data encoder and the one streaming decoder of the project.

The encoder puts the binary part last and returns the bytes before and after it, so a slice can be sent
as ``prefix + data + suffix`` without the encoder ever holding the slice. The boundary comes from a
factory that tests can replace to assert exact bytes.

The decoder is incremental and sans-I/O: :meth:`MultipartDecoder.feed` takes any chunking of the body
and returns events; memory is bounded by the chunk plus one boundary length, whatever the part size.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from airflow_provider_cos.protocol.errors import CosInvalidRequestError

BoundaryFactory = Callable[[], str]


def random_boundary() -> str:
    return "----cosboundary" + secrets.token_hex(16)


def _quote_param(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


@dataclass(frozen=True)
class EncodedForm:
    """``content_type`` plus the bytes around the (optional) binary part."""

    content_type: str
    prefix: bytes
    suffix: bytes

    def body(self, data: bytes | bytearray | memoryview | None = None) -> bytes:
        if data is None:
            return self.prefix + self.suffix
        return b"".join((self.prefix, data, self.suffix))

    def length(self, data_len: int) -> int:
        return len(self.prefix) + data_len + len(self.suffix)

    def frame_into(self, buffer: bytearray | memoryview, data_start: int, data_len: int) -> memoryview:
        """Write ``prefix`` just before and ``suffix`` just after ``data_len`` bytes that already sit at
        ``buffer[data_start:]``; return the view of the whole body (``body(data)``, without a copy).

        Raises :class:`ValueError` when the framing does not fit around the data.
        """
        view = memoryview(buffer)
        start = data_start - len(self.prefix)
        end = data_start + data_len + len(self.suffix)
        if start < 0 or data_len < 0 or end > view.nbytes:
            raise ValueError(
                f"multipart framing ({len(self.prefix)} + {len(self.suffix)} bytes) does not fit "
                f"around {data_len} bytes at {data_start} in a buffer of {view.nbytes}"
            )
        view[start:data_start] = self.prefix
        view[data_start + data_len : end] = self.suffix
        return view[start:end]


def encode_form(
    fields: Sequence[tuple[str, str]],
    file_field: str | None = None,
    *,
    filename: str = "blob",
    boundary_factory: BoundaryFactory = random_boundary,
) -> EncodedForm:
    """Encode text ``fields`` and, if ``file_field`` is given, the header of a binary part placed last."""
    boundary = boundary_factory()
    dash = f"--{boundary}".encode("ascii")
    chunks: list[bytes] = []
    for name, value in fields:
        chunks.append(dash + b"\r\n")
        chunks.append(f'Content-Disposition: form-data; name="{_quote_param(name)}"\r\n\r\n'.encode())
        chunks.append(value.encode("utf-8") + b"\r\n")
    if file_field is not None:
        chunks.append(dash + b"\r\n")
        chunks.append(
            f'Content-Disposition: form-data; name="{_quote_param(file_field)}"; '
            f'filename="{_quote_param(filename)}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
        )
        prefix = b"".join(chunks)
        suffix = b"\r\n" + dash + b"--\r\n"
    else:
        prefix = b"".join(chunks)
        suffix = dash + b"--\r\n"
    return EncodedForm(f"multipart/form-data; boundary={boundary}", prefix, suffix)


# --------------------------------------------------------------------------------------------- decoder


@dataclass(frozen=True)
class PartStart:
    name: str
    filename: str | None
    content_type: str | None


@dataclass(frozen=True)
class PartData:
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class PartEnd:
    pass


@dataclass(frozen=True)
class FormEnd:
    pass


Event = PartStart | PartData | PartEnd | FormEnd

MAX_HEADER_BYTES = 16 * 1024


def parse_boundary(content_type: str) -> str:
    """Extract the boundary from a ``multipart/form-data`` Content-Type, or raise."""
    main, _, params = content_type.partition(";")
    if main.strip().lower() != "multipart/form-data":
        raise CosInvalidRequestError(f"expected multipart/form-data, got {main.strip()!r}", code=-61)
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.strip().lower() == "boundary":
            value = value.strip().strip('"')
            if 0 < len(value) <= 200:
                return value
    raise CosInvalidRequestError("multipart Content-Type has no usable boundary", code=-61)


def _parse_disposition(value: str) -> tuple[str | None, str | None]:
    name: str | None = None
    filename: str | None = None
    for item in value.split(";")[1:]:
        key, _, raw = item.strip().partition("=")
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = raw[1:-1]
        key = key.strip().lower()
        if key == "name":
            name = raw
        elif key == "filename":
            filename = raw
    return name, filename


class MultipartDecoder:
    """Incremental ``multipart/form-data`` parser.

    States: preamble → headers → body → (headers | done). Raises :class:`CosInvalidRequestError` for a
    malformed body; call :meth:`close` at end of input to detect truncation.
    """

    def __init__(self, boundary: str) -> None:
        self._delim = b"\r\n--" + boundary.encode("latin-1")
        self._buf = bytearray(b"\r\n")  # lets the first boundary match the same delimiter
        self._state = "preamble"
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, chunk: bytes) -> list[Event]:
        if self._done:
            return []  # the epilogue is ignored
        self._buf += chunk
        events: list[Event] = []
        dlen = len(self._delim)
        while not self._done:
            if self._state == "preamble":
                idx = self._buf.find(self._delim)
                if idx < 0:
                    if len(self._buf) > 64 * 1024:
                        raise CosInvalidRequestError("multipart body has no opening boundary", code=-61)
                    return events
                del self._buf[:idx]
                self._state = "delimiter"
            elif self._state == "delimiter":
                # The buffer starts with a delimiter: "--" ends the form, else padding + CRLF + headers.
                if len(self._buf) < dlen + 2:
                    return events
                if self._buf[dlen : dlen + 2] == b"--":
                    self._done = True
                    self._buf.clear()
                    events.append(FormEnd())
                    return events
                pos = dlen
                while pos < len(self._buf) and self._buf[pos] in b" \t":
                    pos += 1
                if pos - dlen > 64:
                    raise CosInvalidRequestError("multipart boundary line too long", code=-61)
                if len(self._buf) < pos + 2:
                    return events
                if self._buf[pos : pos + 2] != b"\r\n":
                    raise CosInvalidRequestError("multipart boundary not followed by CRLF", code=-61)
                del self._buf[: pos + 2]
                self._state = "headers"
            elif self._state == "headers":
                if self._buf.startswith(b"\r\n"):
                    raise CosInvalidRequestError("multipart part without headers", code=-61)
                idx = self._buf.find(b"\r\n\r\n")
                if idx < 0:
                    if len(self._buf) > MAX_HEADER_BYTES:
                        raise CosInvalidRequestError("multipart part headers too long", code=-61)
                    return events
                raw_headers = bytes(self._buf[:idx])
                del self._buf[: idx + 4]
                events.append(self._part_start(raw_headers))
                self._state = "body"
            else:  # body
                idx = self._buf.find(self._delim)
                if idx < 0:
                    safe = len(self._buf) - (dlen - 1)
                    if safe > 0:
                        events.append(PartData(bytes(self._buf[:safe])))
                        del self._buf[:safe]
                    return events
                if idx:
                    events.append(PartData(bytes(self._buf[:idx])))
                    del self._buf[:idx]
                events.append(PartEnd())
                self._state = "delimiter"
        return events

    def _part_start(self, raw_headers: bytes) -> PartStart:
        name: str | None = None
        filename: str | None = None
        content_type: str | None = None
        try:
            text = raw_headers.decode("utf-8")
        except UnicodeDecodeError:
            text = raw_headers.decode("latin-1")
        for line in text.split("\r\n"):
            if not line.strip():
                continue
            key, sep, value = line.partition(":")
            if not sep:
                raise CosInvalidRequestError("malformed multipart part header", code=-61)
            key = key.strip().lower()
            if key == "content-disposition":
                name, filename = _parse_disposition(value)
            elif key == "content-type":
                content_type = value.strip()
        if name is None:
            raise CosInvalidRequestError("multipart part without a Content-Disposition name", code=-61)
        return PartStart(name=name, filename=filename, content_type=content_type)

    def close(self) -> None:
        """Signal end of input; raises if the closing boundary never arrived."""
        if not self._done:
            raise CosInvalidRequestError("multipart body truncated (no closing boundary)", code=-61)
