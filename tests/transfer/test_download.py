"""``CosClient.download_file`` against the emulator: ranged parts, faults on real sockets, resume,
integrity, and the guarantee that ``local_path`` is never half-written."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_provider_cos.emulator import CosEmulator, FaultRule
from airflow_provider_cos.protocol.crc64 import Crc64
from airflow_provider_cos.protocol.errors import (
    CosIntegrityError,
    CosInvalidRequestError,
    CosLocalFileError,
    CosNotFoundError,
    CosServerError,
    CosTransportError,
)
from airflow_provider_cos.transfer import CosClient, ProgressEvent, RetryPolicy
from airflow_provider_cos.transfer.download import partial_paths, plan_parts
from tests.support.faultproxy import FaultProxy, ProxyFault
from tests.transfer.conftest import KiB, MiB, sha1_of, small_config, write_file

Make = Callable[..., CosClient]
SIZE = 3 * MiB + 777
PART = 512 * KiB
PARTS = -(-SIZE // PART)  # 7
#: The emulator's op name (stats, fault rules) of a ranged read, per generation.
GET_OP = {"v1": "download", "v2": "download", "xml": "GetObject"}


def dl_config(**overrides: object) -> object:
    return small_config(download_part_size=PART, **overrides)


@pytest.fixture(params=["v1", "v2", "xml"])
def stored(make_client: Make, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, str]:
    """An object of SIZE bytes at /obj.bin in each generation; returns (api_version, its SHA-1)."""
    api_version = str(request.param)
    src = tmp_path / "src.bin"
    sha1 = write_file(src, SIZE, seed=7)
    make_client(api_version).upload_file(str(src), "/obj.bin")
    return api_version, sha1


def no_leftovers(local: Path) -> bool:
    return not any(p.exists() for p in partial_paths(local))


def test_plan_parts() -> None:
    assert plan_parts(0, 4) == []
    parts = plan_parts(10, 4)
    assert [(p.offset, p.length, p.final) for p in parts] == [(0, 4, False), (4, 4, False), (8, 2, True)]


def test_download_in_parallel_ranged_parts(
    make_client: Make, emulator: CosEmulator, stored: tuple[str, str], tmp_path: Path
) -> None:
    api_version, sha1 = stored
    client = make_client(api_version, config=dl_config())
    emulator.reset_stats()
    events: list[ProgressEvent] = []
    local = tmp_path / "out" / "copy.bin"  # the folder is created
    result = client.download_file("/obj.bin", str(local), progress=events.append)
    assert sha1_of(local) == sha1 and result.size == SIZE
    if api_version == "xml":  # checked by CRC64, combined from the parts
        assert result.sha1 is None and result.crc64 == str(Crc64(local.read_bytes()).value)
    else:
        assert result.sha1 == sha1 and result.crc64 is None
    assert result.parts_received == PARTS and result.bytes_received == SIZE and result.bytes_resumed == 0
    assert result.resource_path.endswith("/obj.bin")
    assert emulator.stats.requests.get(GET_OP[api_version]) == PARTS
    assert events[-1].bytes_done == SIZE and sum(e.bytes_delta for e in events) == SIZE
    assert no_leftovers(local)


@pytest.mark.parametrize("api_version", ["v2", "xml"])
def test_empty_and_single_part_objects(make_client: Make, tmp_path: Path, api_version: str) -> None:
    client = make_client(api_version, config=dl_config())
    for name, size in (("empty.bin", 0), ("tiny.bin", 1000)):
        src = tmp_path / name
        sha1 = write_file(src, size)
        client.upload_file(str(src), f"/{name}")
        out = tmp_path / f"got-{name}"
        result = client.download_file(f"/{name}", str(out))
        assert out.stat().st_size == size and sha1_of(out) == sha1 and result.parts_received == (size > 0)


def test_missing_object_and_folder(make_client: Make, tmp_path: Path) -> None:
    client = make_client("v2", config=dl_config())
    local = tmp_path / "never.bin"
    with pytest.raises(CosNotFoundError) as info:
        client.download_file("/absent.bin", str(local))
    assert info.value.path == "/absent.bin"
    assert not local.exists() and no_leftovers(local)
    client.create_folder("/dir/")
    with pytest.raises(CosInvalidRequestError):
        client.download_file("/dir/", str(local))
    with pytest.raises(CosLocalFileError):
        client.download_file("/absent.bin", str(tmp_path))  # a directory is no file name


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_bursts_are_retried(
    make_client: Make, emulator: CosEmulator, stored: tuple[str, str], tmp_path: Path, status: int
) -> None:
    api_version, sha1 = stored
    emulator.add_fault(FaultRule(op=GET_OP[api_version], status=status, times=3))
    local = tmp_path / "copy.bin"
    make_client(api_version, config=dl_config()).download_file("/obj.bin", str(local))
    assert emulator.stats.faults_fired == 3
    assert sha1_of(local) == sha1


@pytest.mark.parametrize("action", ["reset_answer", "truncate"])
def test_reset_or_truncation_mid_range(
    make_client: Make, emulator: CosEmulator, stored: tuple[str, str], tmp_path: Path, action: str
) -> None:
    api_version, sha1 = stored
    with FaultProxy(emulator.url) as proxy:
        proxy.add(ProxyFault(action, nth=2, match=b"Range: bytes=", times=2))  # type: ignore[arg-type]
        events: list[ProgressEvent] = []
        local = tmp_path / "copy.bin"
        result = make_client(api_version, url=proxy.url, config=dl_config()).download_file(
            "/obj.bin", str(local), progress=events.append
        )
        assert proxy.faults_fired == 2
    assert sha1_of(local) == sha1 and result.bytes_received == SIZE
    assert events[-1].bytes_done == SIZE
    assert no_leftovers(local)


def _fail_part_at(proxy: FaultProxy, offset: int) -> None:
    proxy.add(ProxyFault("reset_answer", match=f"Range: bytes={offset}-".encode(), times=100))


def test_failure_never_leaves_a_half_written_file_and_resume_fetches_only_the_rest(
    make_client: Make, emulator: CosEmulator, stored: tuple[str, str], tmp_path: Path
) -> None:
    api_version, sha1 = stored
    local = tmp_path / "copy.bin"
    local.write_bytes(b"previous version")
    one_by_one = dl_config(max_workers=1, retry=RetryPolicy(max_attempts=2, backoff_base=0.01, deadline=30))
    with FaultProxy(emulator.url) as proxy:
        _fail_part_at(proxy, 4 * PART)
        with pytest.raises(CosTransportError):
            make_client(api_version, url=proxy.url, config=one_by_one).download_file("/obj.bin", str(local))
        assert proxy.faults_fired == 2
    assert local.read_bytes() == b"previous version"  # untouched
    partial, state_file = partial_paths(local)
    assert partial.exists() and sorted(json.loads(state_file.read_text())["done"]) == [i * PART for i in range(4)]

    emulator.reset_stats()
    events: list[ProgressEvent] = []
    result = make_client(api_version, config=dl_config()).download_file("/obj.bin", str(local), progress=events.append)
    assert result.bytes_resumed == 4 * PART and result.bytes_received == SIZE - 4 * PART
    assert emulator.stats.requests.get(GET_OP[api_version]) == PARTS - 4
    assert events[0].bytes_found == 4 * PART and events[-1].bytes_done == SIZE
    assert sha1_of(local) == sha1 and no_leftovers(local)


def test_object_replaced_between_tries_starts_afresh(
    make_client: Make, emulator: CosEmulator, stored: tuple[str, str], tmp_path: Path
) -> None:
    api_version, _ = stored
    local = tmp_path / "copy.bin"
    one_by_one = dl_config(max_workers=1, retry=RetryPolicy(max_attempts=1, deadline=30))
    with FaultProxy(emulator.url) as proxy:
        _fail_part_at(proxy, 2 * PART)
        with pytest.raises(CosTransportError):
            make_client(api_version, url=proxy.url, config=one_by_one).download_file("/obj.bin", str(local))
    client = make_client(api_version, config=dl_config())
    other = tmp_path / "other.bin"
    other_sha = write_file(other, SIZE, seed=99)
    client.delete("/obj.bin")
    client.upload_file(str(other), "/obj.bin")
    result = client.download_file("/obj.bin", str(local))
    assert result.bytes_resumed == 0 and sha1_of(local) == other_sha


def test_corrupt_partial_file_is_an_integrity_error_then_a_clean_retry(
    make_client: Make, emulator: CosEmulator, stored: tuple[str, str], tmp_path: Path
) -> None:
    api_version, sha1 = stored
    local = tmp_path / "copy.bin"
    one_by_one = dl_config(max_workers=1, retry=RetryPolicy(max_attempts=1, deadline=30))
    with FaultProxy(emulator.url) as proxy:
        _fail_part_at(proxy, 3 * PART)
        with pytest.raises(CosTransportError):
            make_client(api_version, url=proxy.url, config=one_by_one).download_file("/obj.bin", str(local))
    partial, _ = partial_paths(local)
    with open(partial, "r+b") as f:  # flip a byte of a part recorded as done
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    client = make_client(api_version, config=dl_config())
    with pytest.raises(CosIntegrityError):
        client.download_file("/obj.bin", str(local))
    assert not local.exists() and no_leftovers(local)
    client.download_file("/obj.bin", str(local))
    assert sha1_of(local) == sha1


def test_5xx_beyond_the_policy_is_typed_and_keeps_the_target(
    make_client: Make, emulator: CosEmulator, stored: tuple[str, str], tmp_path: Path
) -> None:
    api_version, _ = stored
    emulator.add_fault(FaultRule(op=GET_OP[api_version], status=500, times=None))
    local = tmp_path / "copy.bin"
    with pytest.raises(CosServerError) as info:
        make_client(api_version, config=dl_config(retry=RetryPolicy(max_attempts=2, backoff_base=0.01))).download_file(
            "/obj.bin", str(local)
        )
    assert info.value.operation in ("download", "GetObject") and emulator.stats.faults_fired >= 2
    assert not local.exists()
