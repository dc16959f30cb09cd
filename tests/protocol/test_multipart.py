from __future__ import annotations

import os
import random

import pytest

from airflow_provider_cos.protocol.errors import CosInvalidRequestError
from airflow_provider_cos.protocol.multipart import (
    FormEnd,
    MultipartDecoder,
    PartData,
    PartEnd,
    PartStart,
    encode_form,
    parse_boundary,
)


def _decode(body: bytes, boundary: str, step: int) -> list[tuple[str, str | None, bytes]]:
    dec = MultipartDecoder(boundary)
    events = []
    for i in range(0, len(body), step):
        events += dec.feed(body[i : i + step])
    dec.close()
    parts: list[tuple[str, str | None, bytes]] = []
    current: list[bytes] = []
    name: tuple[str, str | None] | None = None
    for ev in events:
        if isinstance(ev, PartStart):
            name = (ev.name, ev.filename)
            current = []
        elif isinstance(ev, PartData):
            current.append(ev.data)
        elif isinstance(ev, PartEnd):
            assert name is not None
            parts.append((name[0], name[1], b"".join(current)))
        else:
            assert isinstance(ev, FormEnd)
    assert isinstance(events[-1], FormEnd)
    return parts


def test_exact_bytes_with_deterministic_boundary() -> None:
    form = encode_form([("op", "upload_slice"), ("offset", "0")], "filecontent", boundary_factory=lambda: "B")
    assert form.content_type == "multipart/form-data; boundary=B"
    assert form.body(b"DATA") == (
        b'--B\r\nContent-Disposition: form-data; name="op"\r\n\r\nupload_slice\r\n'
        b'--B\r\nContent-Disposition: form-data; name="offset"\r\n\r\n0\r\n'
        b'--B\r\nContent-Disposition: form-data; name="filecontent"; filename="blob"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\nDATA\r\n--B--\r\n"
    )
    assert form.length(4) == len(form.body(b"DATA"))


@pytest.mark.parametrize("step", [1, 2, 5, 17, 1000, 65536, 10**7])
def test_round_trip_any_chunking(step: int) -> None:
    rng = random.Random(step)
    # binary data that contains near-boundary sequences
    data = bytes(rng.getrandbits(8) for _ in range(20000)) + b"\r\n--XYZ" + b"\r\n--XY" + os.urandom(100)
    form = encode_form([("op", "upload"), ("biz_attr", "ünïcode")], "fileContent", boundary_factory=lambda: "XYZZY")
    parts = _decode(form.body(data), "XYZZY", step)
    assert parts == [("op", None, b"upload"), ("biz_attr", None, "ünïcode".encode()), ("fileContent", "blob", data)]


def test_text_only_form_and_preamble_epilogue() -> None:
    form = encode_form([("op", "upload_slice_list")], boundary_factory=lambda: "b0")
    body = b"preamble junk\r\n" + form.body() + b"epilogue"
    assert _decode(body, "b0", 3) == [("op", None, b"upload_slice_list")]


def test_empty_file_part() -> None:
    form = encode_form([], "filecontent", boundary_factory=lambda: "zz")
    assert _decode(form.body(b""), "zz", 1) == [("filecontent", "blob", b"")]


@pytest.mark.parametrize(
    "body",
    [
        b"--B\r\nno-colon-header\r\n\r\nx\r\n--B--\r\n",
        b"--B\r\nContent-Type: text/plain\r\n\r\nx\r\n--B--\r\n",  # no name
        b"--Bjunk\r\n",
        b"--B\r\n\r\nheaderless\r\n--B--\r\n",
    ],
)
def test_malformed_bodies_raise_typed_error(body: bytes) -> None:
    dec = MultipartDecoder("B")
    with pytest.raises(CosInvalidRequestError):
        dec.feed(body)
        dec.close()


def test_truncated_body_detected_on_close() -> None:
    form = encode_form([("op", "x")], "filecontent", boundary_factory=lambda: "B")
    body = form.body(b"0123456789")
    dec = MultipartDecoder("B")
    dec.feed(body[:-10])
    with pytest.raises(CosInvalidRequestError, match="truncated"):
        dec.close()


def test_no_boundary_at_all_is_bounded() -> None:
    dec = MultipartDecoder("B")
    with pytest.raises(CosInvalidRequestError, match="opening boundary"):
        for _ in range(100):
            dec.feed(b"x" * 4096)


def test_headers_too_long() -> None:
    dec = MultipartDecoder("B")
    with pytest.raises(CosInvalidRequestError, match="too long"):
        dec.feed(b"--B\r\nX-Long: " + b"a" * 20000)


def test_memory_is_bounded_while_streaming_a_large_part() -> None:
    dec = MultipartDecoder("B")
    dec.feed(b'--B\r\nContent-Disposition: form-data; name="f"\r\n\r\n')
    chunk = b"\x00" * 65536
    for _ in range(64):
        events = dec.feed(chunk)
        assert sum(len(e.data) for e in events if isinstance(e, PartData)) >= 65536 - 16
        assert len(dec._buf) < 16  # only a possible boundary prefix is held back


@pytest.mark.parametrize(
    ("ctype", "expected"),
    [("multipart/form-data; boundary=abc", "abc"), ('Multipart/Form-Data; charset=x; boundary="q r"', "q r")],
)
def test_parse_boundary(ctype: str, expected: str) -> None:
    assert parse_boundary(ctype) == expected


@pytest.mark.parametrize("ctype", ["application/json", "multipart/form-data", "multipart/form-data; boundary="])
def test_parse_boundary_rejects(ctype: str) -> None:
    with pytest.raises(CosInvalidRequestError):
        parse_boundary(ctype)


def test_frame_into_writes_the_same_bytes_around_data_in_place() -> None:
    form = encode_form([("op", "upload_slice"), ("offset", "0")], "filecontent", boundary_factory=lambda: "B")
    buf = bytearray(b"\xee" * 400)
    buf[300:304] = b"DATA"
    body = form.frame_into(buf, 300, 4)
    assert isinstance(body, memoryview)
    assert bytes(body) == form.body(b"DATA")
    assert body.obj is buf  # a view of the caller's buffer, not a copy
    assert buf[: 300 - len(form.prefix)] == b"\xee" * (300 - len(form.prefix))  # nothing written outside
    assert buf[304 + len(form.suffix) :] == b"\xee" * (96 - len(form.suffix))
    # the data may also start exactly after the prefix and end right before the end of the buffer
    tight = bytearray(form.length(4))
    tight[len(form.prefix) : len(form.prefix) + 4] = b"DATA"
    assert bytes(form.frame_into(tight, len(form.prefix), 4)) == form.body(b"DATA")


@pytest.mark.parametrize(("start", "size"), [(10, 300), (200, 205)])
def test_frame_into_refuses_a_buffer_too_small(start: int, size: int) -> None:
    form = encode_form([("op", "upload_slice")], "filecontent", boundary_factory=lambda: "B")
    with pytest.raises(ValueError, match="does not fit"):
        form.frame_into(bytearray(size), start, 4)
