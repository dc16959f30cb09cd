"""``CosClient.upload_files``: many files, one bounded pool, skip of identical content, partial failure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_provider_cos.emulator import CosEmulator
from airflow_provider_cos.transfer import CosClient
from airflow_provider_cos.transfer.batch import BatchItem, CosBatchError, SharedPool
from tests.support.faultproxy import FaultProxy
from tests.transfer.conftest import KiB, MiB, small_config, write_file

Make = Callable[..., CosClient]


def _files(root: Path, sizes: list[int]) -> list[BatchItem]:
    items = []
    for i, size in enumerate(sizes):
        path = root / f"f{i:03d}.bin"
        write_file(path, size, seed=i)
        items.append(BatchItem(str(path), f"/batch/f{i:03d}.bin"))
    return items


def test_shared_pool_bounds_threads() -> None:
    import threading

    pool = SharedPool(2)
    running, peak, lock = [0], [0], threading.Lock()
    gate = threading.Barrier(2, timeout=5)

    def work() -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        gate.wait()
        with lock:
            running[0] -= 1

    views = [pool.factory(8) for _ in range(3)]
    for view in views:
        view.submit(work)
        view.submit(work)
    for view in views:
        view.shutdown(wait=True)
    pool.close()
    assert peak[0] == 2  # six tasks of three "transfers", never more than the pool's two threads


@pytest.mark.parametrize("api_version", ["v1", "v2", "xml"])
def test_many_files_one_bounded_pool_then_a_retry_skips_identical(
    make_client: Make, emulator: CosEmulator, tmp_path: Path, api_version: str
) -> None:
    sizes = [10 * KiB + i for i in range(24)] + [3 * MiB + 5, 2 * MiB + 1]  # two go in slices/parts
    items = _files(tmp_path, sizes)
    config = small_config(max_workers=3, simple_threshold=MiB, slice_size=MiB)
    with FaultProxy(emulator.url) as proxy:
        client = make_client(api_version, url=proxy.url, config=config)
        done: list[int] = []
        result = client.upload_files(items, on_done=lambda _o, n, _t: done.append(n))
        assert proxy.max_concurrent <= 2 * 3, proxy.max_concurrent  # file threads + the shared slice pool
    result.raise_for_failures()
    assert sorted(done) == list(range(1, len(items) + 1))
    assert result.count("uploaded") == len(items)
    assert result.resource_paths == [client.target.fileid(i.cos_path) for i in items]
    check = make_client(api_version)
    for item, size in zip(items, sizes, strict=True):
        info = check.stat(item.cos_path)
        assert info is not None and info.filesize == size

    # a retry: one file changed, one new; the rest is already stored and is not sent again
    write_file(Path(items[3].local_path), sizes[3], seed=999)
    write_file(tmp_path / "new.bin", 5 * KiB, seed=1234)
    items.append(BatchItem(str(tmp_path / "new.bin"), "/batch/new.bin"))
    emulator.reset_stats()
    again = make_client(api_version, config=config).upload_files(items)
    again.raise_for_failures()
    assert again.count("uploaded") == 2 and again.count("skipped") == len(items) - 2
    assert {o.item.cos_path for o in again.outcomes if o.status == "uploaded"} == {items[3].cos_path, "/batch/new.bin"}
    written = {op: n for op, n in emulator.stats.requests.items() if op in ("upload", "PutObject")}
    assert sum(written.values()) == 2, emulator.stats.requests


def test_partial_failure_names_the_files(make_client: Make, tmp_path: Path) -> None:
    items = _files(tmp_path, [1000, 2000, 3000])
    Path(items[1].local_path).unlink()  # vanished after listing
    result = make_client("v2").upload_files(items)
    assert [o.status for o in result.outcomes] == ["uploaded", "failed", "uploaded"]
    with pytest.raises(CosBatchError) as info:
        result.raise_for_failures()
    assert items[1].local_path in str(info.value) and "1 failed" in str(info.value)
    assert list(info.value.failures) == [items[1].local_path]
    assert len(result.resource_paths) == 2
