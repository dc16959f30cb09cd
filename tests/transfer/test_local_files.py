"""Local files that are not plain, stable regular files (issue 7 §4): each fails at once with a typed
error naming the file, and no request is sent for a file that cannot be uploaded."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_provider_cos.emulator import CosEmulator, FaultRule
from airflow_provider_cos.protocol.errors import CosFileChangedError, CosLocalFileError
from airflow_provider_cos.transfer import CosClient, ProgressEvent
from airflow_provider_cos.transfer.hashing import FileIdentity, hash_file
from tests.transfer.conftest import MiB, small_config, stored_sha1, write_file

Make = Callable[..., CosClient]


def _upload_in_thread(client: CosClient, path: str) -> BaseException | None:
    """Upload ``path`` in a thread that must end within 10 s; return what it raised."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            client.upload_file(path, "/special.bin")
            outcome.append(None)
        except BaseException as e:
            outcome.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():  # hung in open(): give it a writer so that the thread can end, then fail
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        thread.join(10)
        pytest.fail(f"upload of {path} hung")
    return outcome[0]


@pytest.mark.parametrize("kind", ["fifo", "socket", "device", "directory"])
def test_special_files_fail_at_once(make_client: Make, emulator: CosEmulator, tmp_path: Path, kind: str) -> None:
    path = str(tmp_path / kind)
    sock = None
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(path)
    elif kind == "device":
        path = "/dev/null"
    else:
        os.mkdir(path)
    try:
        error = _upload_in_thread(make_client("v2"), path)
    finally:
        if sock is not None:
            sock.close()
    assert isinstance(error, CosLocalFileError), repr(error)
    assert error.path == path and "not a regular file" in str(error)
    assert emulator.stats.requests == {}


def test_missing_file_is_a_typed_error_naming_it(make_client: Make, emulator: CosEmulator, tmp_path: Path) -> None:
    with pytest.raises(CosLocalFileError, match="No such file") as info:
        make_client("v1").upload_file(str(tmp_path / "nope.bin"), "/x.bin")
    assert info.value.path == str(tmp_path / "nope.bin") and isinstance(info.value.__cause__, OSError)
    assert emulator.stats.requests == {}


def test_proc_file_with_size_zero_is_not_uploaded_empty(make_client: Make, emulator: CosEmulator) -> None:
    path = "/proc/self/status"
    assert os.stat(path).st_size == 0 and Path(path).read_bytes()
    with pytest.raises(CosLocalFileError, match="more bytes than its size") as info:
        make_client("v2").upload_file(path, "/proc-status.txt")
    assert info.value.path == path
    assert stored_sha1(emulator, "/proc-status.txt") is None


def test_hash_pass_detects_bytes_beyond_the_size() -> None:
    path = "/proc/self/status"
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(CosLocalFileError, match="more bytes than its size"):
            hash_file(fd, FileIdentity.of_stat(os.fstat(fd)), path=path, parts_slice_size=None)
    finally:
        os.close(fd)


def test_file_unlinked_mid_upload_is_a_typed_error(
    make_client: Make, emulator: CosEmulator, tmp_path: Path, api_version: str
) -> None:
    src = tmp_path / "gone.bin"
    write_file(src, 3 * MiB)
    emulator.add_fault(
        FaultRule(op={"v1": "upload_slice", "v2": "upload_slice_data"}[api_version], delay=0.01, times=None)
    )
    client = make_client(api_version, config=small_config(max_workers=1))
    unlinked = threading.Event()

    def on_progress(event: ProgressEvent) -> None:
        if event.bytes_done >= MiB and not unlinked.is_set():
            unlinked.set()
            os.unlink(src)

    with pytest.raises(CosFileChangedError, match="disappeared") as info:
        client.upload_file(str(src), "/gone.bin", progress=on_progress)
    assert unlinked.is_set() and info.value.path == str(src)
    assert isinstance(info.value.__cause__, FileNotFoundError)
    assert stored_sha1(emulator, "/gone.bin") is None


def test_read_error_is_a_typed_error_naming_the_file(tmp_path: Path) -> None:
    """An OSError from a read (here EBADF, standing for EIO) is wrapped with ``from e``."""
    from airflow_provider_cos.transfer.buffers import preadv_exact

    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 10)
    fd = os.open(path, os.O_WRONLY)  # not readable
    try:
        with pytest.raises(CosLocalFileError) as info:
            preadv_exact(fd, memoryview(bytearray(10)), 0, path=str(path))
        assert info.value.path == str(path) and isinstance(info.value.__cause__, OSError)
        with pytest.raises(CosLocalFileError):
            hash_file(fd, FileIdentity.of_path(str(path)), path=str(path), parts_slice_size=None)
    finally:
        os.close(fd)
