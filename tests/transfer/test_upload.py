"""Uploads and plain operations against the emulator (real sockets)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_provider_cos.emulator import CosEmulator
from airflow_provider_cos.protocol.errors import (
    CosAlreadyExistsError,
    CosAuthError,
    CosCancelledError,
    CosConfigError,
    CosNotFoundError,
)
from airflow_provider_cos.transfer import CosClient, ProgressEvent, UploadResult, inline_executor
from tests.support.faultproxy import FaultProxy
from tests.transfer.conftest import KiB, MiB, sha1_of, small_config, stored_sha1, write_file

Make = Callable[..., CosClient]


def slice_ops(emu: CosEmulator) -> int:
    r = emu.stats.requests
    return r.get("upload_slice", 0) + r.get("upload_slice_data", 0)


def assert_stored(client: CosClient, emu: CosEmulator, cos_path: str, sha1: str, size: int) -> None:
    info = client.stat(cos_path)
    assert info is not None and info.sha == sha1 and info.filesize == size and info.complete
    assert stored_sha1(emu, cos_path) == sha1


def test_slice_upload_round_trip(make_client: Make, emulator: CosEmulator, tmp_path: Path, api_version: str) -> None:
    src = tmp_path / "big.bin"
    size = 3 * MiB + 12345
    sha1 = write_file(src, size)
    client = make_client(api_version)
    events: list[ProgressEvent] = []
    result = client.upload_file(str(src), "/data/deep/big.bin", progress=events.append)
    assert isinstance(result, UploadResult)
    assert (result.size, result.sha1, result.instant, result.method) == (size, sha1, False, "slice")
    assert result.slices_sent == 7 and result.bytes_sent == size
    assert result.resource_path.endswith("/data/deep/big.bin") and result.access_url and result.url
    assert_stored(client, emulator, "/data/deep/big.bin", sha1, size)
    assert emulator.stats.slice_bytes == size  # nothing sent twice
    assert events[-1].bytes_done == size and sum(e.bytes_delta for e in events) == size
    assert client.exists("/data/deep/") and client.exists("/data/")


def test_small_file_goes_through_simple_upload(
    make_client: Make, emulator: CosEmulator, tmp_path: Path, api_version: str
) -> None:
    src = tmp_path / "small.bin"
    sha1 = write_file(src, 200 * KiB)
    client = make_client(api_version)
    result = client.upload_file(str(src), "/small.bin")
    assert result.method == "simple" and result.slices_sent == 0 and result.bytes_sent == 200 * KiB
    assert emulator.stats.requests.get("upload") == 1 and slice_ops(emulator) == 0
    assert_stored(client, emulator, "/small.bin", sha1, 200 * KiB)


def test_threshold_is_configurable(make_client: Make, emulator: CosEmulator, tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    write_file(src, 600 * KiB)
    client = make_client("v2", config=small_config(simple_threshold=512 * KiB))
    assert client.upload_file(str(src), "/f.bin").method == "slice"
    assert emulator.stats.requests.get("upload", 0) == 0


def test_empty_file(make_client: Make, emulator: CosEmulator, tmp_path: Path, api_version: str) -> None:
    src = tmp_path / "empty"
    src.write_bytes(b"")
    client = make_client(api_version)
    result = client.upload_file(str(src), "/empty")
    assert result.size == 0 and result.sha1 == "da39a3ee5e6b4b0d3255bfef95601890afd80709"
    assert client.stat("/empty") is not None


def test_instant_upload_sends_no_slice(
    make_client: Make, emulator: CosEmulator, tmp_path: Path, api_version: str
) -> None:
    src = tmp_path / "same.bin"
    sha1 = write_file(src, 2 * MiB)
    client = make_client(api_version)
    client.upload_file(str(src), "/a/first.bin")
    before = emulator.stats.slice_bytes
    result = client.upload_file(str(src), "/b/second.bin")
    assert result.instant and result.method == "instant" and result.bytes_sent == 0 and result.slices_sent == 0
    assert emulator.stats.slice_bytes == before
    assert_stored(client, emulator, "/b/second.bin", sha1, 2 * MiB)


def test_server_slice_size_wins(make_client: Make, emulator: CosEmulator, tmp_path: Path, api_version: str) -> None:
    emulator.settings.slice_size = 256 * KiB
    src = tmp_path / "f.bin"
    sha1 = write_file(src, 2 * MiB + 5)
    client = make_client(api_version, config=small_config(slice_size=1 * MiB))
    result = client.upload_file(str(src), "/f.bin")
    assert result.slices_sent == 9
    assert_stored(client, emulator, "/f.bin", sha1, 2 * MiB + 5)


def test_serial_upload_sends_one_slice_at_a_time_in_order(
    make_client: Make, emulator: CosEmulator, tmp_path: Path, api_version: str
) -> None:
    emulator.settings.serial_upload = True
    src = tmp_path / "f.bin"
    sha1 = write_file(src, 3 * MiB)
    with FaultProxy(emulator.url) as proxy:
        client = make_client(api_version, url=proxy.url, config=small_config(max_workers=4))
        client.upload_file(str(src), "/serial.bin")
        slices = proxy.requests_matching(b'name="filecontent"')
        assert len(slices) == 6
        offsets = [int(r.sample.split(b'name="offset"\r\n\r\n', 1)[1].split(b"\r\n", 1)[0]) for r in slices]
        assert offsets == sorted(offsets)
        for a, b in itertools.pairwise(slices):
            assert a.ended is not None and a.ended <= b.started
        assert proxy.max_concurrent == 1
        assert_stored(client, emulator, "/serial.bin", sha1, 3 * MiB)


def test_parallel_slices_are_bounded_and_v1_final_goes_last(
    make_client: Make, emulator: CosEmulator, tmp_path: Path, api_version: str
) -> None:
    from airflow_provider_cos.emulator import FaultRule

    emulator.add_fault(FaultRule(op="upload_slice_data", delay=0.05, times=None))
    src = tmp_path / "f.bin"
    write_file(src, 4 * MiB)
    with FaultProxy(emulator.url) as proxy:
        client = make_client(api_version, url=proxy.url, config=small_config(max_workers=3))
        client.upload_file(str(src), "/par.bin")
        slices = proxy.requests_matching(b'name="filecontent"')
        assert 1 < proxy.max_concurrent <= 3
        if api_version == "v1":
            final = max(slices, key=lambda r: r.number)
            assert b'name="offset"\r\n\r\n3670016\r\n' in final.sample
            assert all(r.ended is not None and r.ended <= final.started for r in slices if r is not final)


def test_inline_executor_is_deterministic(
    make_client: Make, emulator: CosEmulator, tmp_path: Path, api_version: str
) -> None:
    src = tmp_path / "f.bin"
    sha1 = write_file(src, 2 * MiB)
    with FaultProxy(emulator.url) as proxy:
        client = make_client(api_version, url=proxy.url, executor_factory=inline_executor)
        client.upload_file(str(src), "/inline.bin")
        assert proxy.max_concurrent == 1
        assert_stored(client, emulator, "/inline.bin", sha1, 2 * MiB)


def test_insert_only_refuses_to_overwrite(
    make_client: Make, emulator: CosEmulator, tmp_path: Path, api_version: str
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write_file(a, 2 * MiB, seed=1)
    sha_b = write_file(b, 2 * MiB, seed=2)
    client = make_client(api_version)
    client.upload_file(str(a), "/x.bin")
    with pytest.raises(CosAlreadyExistsError):
        client.upload_file(str(b), "/x.bin", insert_only=True)
    client.upload_file(str(b), "/x.bin")  # overwrite allowed by default
    assert_stored(client, emulator, "/x.bin", sha_b, 2 * MiB)


def test_stat_exists_delete_list_folders(make_client: Make, emulator: CosEmulator, tmp_path: Path) -> None:
    client = make_client("v2")
    assert client.stat("/nope.bin") is None and not client.exists("/nope.bin")
    assert client.ensure_folders("/a/b/c/file.bin") == ["/a/", "/a/b/", "/a/b/c/"]
    assert client.ensure_folders("/a/b/c/file.bin") == []
    with pytest.raises(CosAlreadyExistsError):
        client.create_folder("/a/")
    src = tmp_path / "s"
    src.write_bytes(b"hello")
    for i in range(7):
        client.upload_file(str(src), f"/a/b/c/f{i}.txt")
    client.upload_file(str(src), "/a/b/c/other.txt")
    names = [i.name for i in client.list("/a/b/c/", page_size=3)]
    assert sorted(names) == sorted([f"f{i}.txt" for i in range(7)] + ["other.txt"])
    assert sorted(i.name for i in client.list("/a/b/c/", prefix="f", page_size=2)) == [f"f{i}.txt" for i in range(7)]
    client.delete("/a/b/c/other.txt")
    assert not client.exists("/a/b/c/other.txt")
    with pytest.raises(CosNotFoundError):
        client.delete("/a/b/c/other.txt")


def test_bucket_override_is_validated(make_client: Make) -> None:
    from airflow_provider_cos.protocol.errors import CosConfigError

    client = make_client("v2")
    with pytest.raises(CosConfigError):
        client.stat("/x", bucket="Not_Valid")


def test_auth_errors_are_not_retried(make_client: Make, emulator: CosEmulator, tmp_path: Path) -> None:
    client = make_client("v2", secret_key="wrong-key")
    src = tmp_path / "f"
    write_file(src, 2 * MiB)
    with pytest.raises(CosAuthError):
        client.upload_file(str(src), "/f.bin", create_parents=False)
    assert sum(emulator.stats.requests.values()) == 1


def test_cancel_stops_new_slices(make_client: Make, emulator: CosEmulator, tmp_path: Path, api_version: str) -> None:
    from airflow_provider_cos.emulator import FaultRule

    emulator.add_fault(FaultRule(op="upload_slice_data", delay=0.05, times=None))
    src = tmp_path / "f"
    size = 8 * MiB
    write_file(src, size)
    client = make_client(api_version, config=small_config(max_workers=2))

    def on_progress(event: ProgressEvent) -> None:
        if event.bytes_done >= 2 * MiB:
            threading.Thread(target=client.cancel).start()

    with pytest.raises(CosCancelledError):
        client.upload_file(str(src), "/cancel.bin", progress=on_progress)
    assert client.stat("/cancel.bin") is None or not client.stat("/cancel.bin").complete  # type: ignore[union-attr]
    # no new slices after the cancel: at most the in-flight ones complete
    assert emulator.stats.slice_bytes <= 2 * MiB + 3 * 512 * KiB
    with pytest.raises(CosCancelledError):  # sticky
        client.upload_file(str(src), "/cancel2.bin")


def test_missing_local_file(make_client: Make) -> None:
    from airflow_provider_cos.protocol.errors import CosConfigError

    with pytest.raises(CosConfigError):
        make_client("v2").upload_file("/definitely/not/here", "/x")


def test_sha1_helper_agrees(tmp_path: Path) -> None:
    p = tmp_path / "x"
    assert write_file(p, 1000) == sha1_of(p)


def test_slices_are_framed_in_place_not_joined(
    make_client: Make, emulator: CosEmulator, tmp_path: Path, api_version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slice bodies are views of the per-thread buffers: no joined copy, no buffer outliving its phase."""
    from airflow_provider_cos.protocol.multipart import EncodedForm
    from airflow_provider_cos.transfer import buffers

    def no_join(self: EncodedForm, data: object = None) -> bytes:
        if data is not None:
            raise AssertionError("a slice body was joined")
        return self.prefix + self.suffix

    created: list[buffers.SliceBuffer] = []
    real_init = buffers.SliceBuffer.__init__

    def counting_init(self: buffers.SliceBuffer) -> None:
        real_init(self)
        created.append(self)

    monkeypatch.setattr(EncodedForm, "body", no_join)
    monkeypatch.setattr(buffers.SliceBuffer, "__init__", counting_init)
    src = tmp_path / "big.bin"
    size = 5 * MiB + 777
    sha1 = write_file(src, size)
    client = make_client(api_version, config=small_config(max_workers=2))
    result = client.upload_file(str(src), "/framed.bin")
    assert result.slices_sent == 11
    assert_stored(client, emulator, "/framed.bin", sha1, size)
    # one buffer per sending thread (2 workers, plus the calling thread for the v1 final slice)
    assert 1 <= len(created) <= (3 if api_version == "v1" else 2)
    assert all(b.capacity <= 512 * KiB + buffers.HEADROOM + buffers.TAILROOM for b in created)


@pytest.mark.parametrize("local", ["missing", "directory"])
def test_bad_local_file_creates_no_folder(make_client: Make, emulator: CosEmulator, tmp_path: Path, local: str) -> None:
    client = make_client()
    path = tmp_path / "nope.bin" if local == "missing" else tmp_path
    with pytest.raises(CosConfigError):
        client.upload_file(str(path), "/never/created/x.bin")
    assert client.stat("/never/") is None
    assert "create" not in emulator.stats.requests


def _open_fds_on(path: Path) -> int:
    fd_dir = Path("/proc/self/fd")
    count = 0
    for entry in fd_dir.iterdir():
        try:
            if entry.resolve() == path.resolve():
                count += 1
        except OSError:
            continue
    return count


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc")
def test_cancel_keeps_the_file_open_until_in_flight_slices_end(
    make_client: Make, emulator: CosEmulator, tmp_path: Path
) -> None:
    """upload_file returns at once on cancel, but workers still inside a request keep their descriptor
    valid: the file is closed only when the last one leaves (never a read of a closed or reused fd)."""
    import time

    from airflow_provider_cos.emulator import FaultRule

    emulator.add_fault(FaultRule(op="upload_slice_data", delay=1.0, times=None))
    src = tmp_path / "f"
    write_file(src, 4 * MiB)
    client = make_client("v2", config=small_config(max_workers=2))
    cancelled_at: list[float] = []

    def on_progress(event: ProgressEvent) -> None:
        if event.bytes_done > 0 and not cancelled_at:
            cancelled_at.append(time.monotonic())
            threading.Thread(target=client.cancel).start()

    with pytest.raises(CosCancelledError):
        client.upload_file(str(src), "/cancel-fd.bin", progress=on_progress)
    returned = time.monotonic()
    assert returned - cancelled_at[0] < 0.9  # prompt: did not wait for the delayed answers
    assert _open_fds_on(src) == 1  # workers are still in their requests
    deadline = time.monotonic() + 10
    while _open_fds_on(src) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _open_fds_on(src) == 0  # closed once they left
