"""Reusable slice buffers: exact reads, in-place framing, growth, per-thread ownership."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from airflow_provider_cos.protocol.errors import CosFileChangedError
from airflow_provider_cos.protocol.messages import CosTarget, encode_request, encode_request_head
from airflow_provider_cos.protocol.multipart import encode_form
from airflow_provider_cos.protocol.operations import V2
from airflow_provider_cos.transfer.buffers import (
    HEADROOM,
    TAILROOM,
    SliceBuffer,
    ThreadBuffers,
    preadv_exact,
)
from airflow_provider_cos.transfer.config import SLICE_FRAMING, TransferConfig

TARGET = CosTarget("http://127.0.0.1:8089", "v2", "1250000000", "bkt")


@pytest.fixture
def data_file(tmp_path: Path) -> tuple[int, bytes]:
    content = os.urandom(300_000)
    path = tmp_path / "f.bin"
    path.write_bytes(content)
    fd = os.open(path, os.O_RDONLY)
    yield fd, content  # type: ignore[misc]
    os.close(fd)


def test_preadv_exact_reads_the_range_and_detects_a_short_file(data_file: tuple[int, bytes]) -> None:
    fd, content = data_file
    buf = bytearray(1000)
    preadv_exact(fd, memoryview(buf), 12345, path="f")
    assert bytes(buf) == content[12345:13345]
    with pytest.raises(CosFileChangedError, match="shrank"):
        preadv_exact(fd, memoryview(bytearray(1000)), len(content) - 10, path="f")


def test_load_and_frame_give_the_bytes_of_encode_request(data_file: tuple[int, bytes]) -> None:
    fd, content = data_file
    req = V2.prepare_slice_data("/x.bin", session="S", offset=65536, length=65536, sha="ab" * 20)
    buf = SliceBuffer()
    buf.load(fd, 65536, 65536, path="f")
    assert buf.nbytes == 65536 and bytes(buf.data) == content[65536:131072]
    assert buf.capacity == 65536 + SLICE_FRAMING == 65536 + HEADROOM + TAILROOM
    _, form = encode_request_head(TARGET, req, "SIG", boundary_factory=lambda: "BND")
    body = buf.framed(form)
    assert isinstance(body, memoryview)  # no joined copy
    whole = encode_request(TARGET, req, "SIG", content[65536:131072], boundary_factory=lambda: "BND")
    assert bytes(body) == whole.body
    # a retry frames again with another boundary around the same data
    _, form2 = encode_request_head(TARGET, req, "SIG2", boundary_factory=lambda: "OTHER-BOUNDARY-LONGER")
    assert bytes(buf.framed(form2)) == form2.body(content[65536:131072])


def test_buffer_is_reused_for_smaller_slices_and_replaced_when_too_small(data_file: tuple[int, bytes]) -> None:
    fd, content = data_file
    buf = SliceBuffer()
    buf.load(fd, 100_000, 0, path="f")
    first = buf.capacity
    held = buf.data  # a view still alive (an earlier body): growing must not resize in place
    buf.load(fd, 1000, 5, path="f")
    assert buf.capacity == first and bytes(buf.data) == content[5:1005]
    buf.load(fd, 200_000, 100_000, path="f")
    assert buf.capacity == 200_000 + SLICE_FRAMING
    assert bytes(buf.data) == content[100_000:300_000]
    assert held.nbytes == 100_000  # the old view stays valid (the buffer was replaced, not resized)


def test_framing_too_big_for_the_reserved_room_falls_back_to_a_copy(data_file: tuple[int, bytes]) -> None:
    fd, content = data_file
    buf = SliceBuffer()
    buf.load(fd, 100, 0, path="f")
    form = encode_form([("big", "x" * (HEADROOM + 1))], "filecontent", boundary_factory=lambda: "B")
    body = buf.framed(form)
    assert isinstance(body, bytes) and body == form.body(content[:100])


def test_a_short_read_leaves_an_empty_buffer(data_file: tuple[int, bytes]) -> None:
    fd, content = data_file
    buf = SliceBuffer()
    with pytest.raises(CosFileChangedError):
        buf.load(fd, 1000, len(content) - 1, path="f")
    assert buf.nbytes == 0


def test_one_buffer_per_thread_and_release() -> None:
    buffers = ThreadBuffers()
    mine = buffers.get()
    assert buffers.get() is mine
    seen: list[SliceBuffer] = []
    t = threading.Thread(target=lambda: seen.append(buffers.get()))
    t.start()
    t.join()
    assert seen and seen[0] is not mine
    buffers.release()
    assert buffers.get() is not mine
    buffers.release()
    buffers.release()  # idempotent


def test_memory_bound_counts_each_slice_once() -> None:
    cfg = TransferConfig(max_workers=4, slice_size=1 << 20, hash_chunk_size=4 << 20)
    assert cfg.memory_bound() == 4 * ((1 << 20) + SLICE_FRAMING) + (4 << 20) + (1 << 20)
