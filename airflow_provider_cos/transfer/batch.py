"""Many files in one call: ``CosClient.upload_files``.

Files run ``max_workers`` at a time, and the slices (JSON) or parts (XML) of all of them go through one
shared pool of ``max_workers`` threads (:class:`SharedPool`): the number of data requests in flight is
bounded by ``max_workers`` for the whole batch, not per file. Small files are sent whole by their file
thread (``op=upload`` / ``PutObject``), so at most ``2 × max_workers`` requests are in flight at once.

Memory bound, whatever the number of files::

    peak ≈ max_workers × (2 × simple_threshold)  +  max_workers² × (slice_size + 5 KiB)  +  per-file bookkeeping

(a small file is held twice while it is sent; a pool thread keeps one slice buffer per file it is
serving at the moment).

A file whose object already holds the same content is skipped without sending anything: the object
at its path has the same size and SHA-1 (JSON ``stat``) or CRC64 (XML ``HeadObject``) as the local
file. That makes a retried batch cheap: only the files that failed (or changed) are sent again.

One file's failure does not stop the others; :class:`BatchResult` lists every outcome, and
:meth:`BatchResult.raise_for_failures` raises one :class:`CosBatchError` naming the failed files.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_cos.protocol.crc64 import Crc64
from airflow_provider_cos.protocol.errors import CosError
from airflow_provider_cos.protocol.messages import StatInfo
from airflow_provider_cos.transfer.coordinator import Executor
from airflow_provider_cos.transfer.hashing import local_io_error
from airflow_provider_cos.transfer.results import UploadResult

_log = logging.getLogger(__name__)


class SharedPool:
    """One bounded thread pool behind many transfers: ``factory`` is an ``ExecutorFactory`` whose
    executors submit into the pool and, on ``shutdown(wait=True)``, wait only for their own work."""

    def __init__(self, max_workers: int) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers, thread_name_prefix="cos-batch")

    def factory(self, _max_in_flight: int) -> Executor:
        return _PoolView(self._pool)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class _PoolView:
    def __init__(self, pool: concurrent.futures.ThreadPoolExecutor) -> None:
        self._pool = pool
        self._futures: list[concurrent.futures.Future[None]] = []

    def submit(self, fn: Callable[[], None], /) -> concurrent.futures.Future[None]:
        future = self._pool.submit(fn)
        self._futures.append(future)
        return future

    def shutdown(self, wait: bool = True) -> None:
        if wait:
            concurrent.futures.wait(self._futures)


@dataclass(frozen=True)
class BatchItem:
    local_path: str
    cos_path: str


@dataclass(frozen=True)
class FileOutcome:
    """One file of a batch: ``status`` is ``uploaded``, ``skipped`` (the object already held the same
    content) or ``failed`` (``error`` says why)."""

    item: BatchItem
    status: str
    resource_path: str
    result: UploadResult | None = None
    error: BaseException | None = None


class CosBatchError(CosError):
    """Some files of a batch failed; ``failures`` maps each failed local path to its error."""

    def __init__(self, message: str, failures: dict[str, BaseException]) -> None:
        self.failures = failures
        super().__init__(message)


@dataclass
class BatchResult:
    outcomes: list[FileOutcome] = field(default_factory=list)

    @property
    def resource_paths(self) -> list[str]:
        """The objects now holding the files (uploaded or skipped), in the order of the items."""
        return [o.resource_path for o in self.outcomes if o.status != "failed"]

    @property
    def failed(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def summary(self) -> str:
        text = (
            f"{len(self.outcomes)} file(s): {self.count('uploaded')} uploaded, {self.count('skipped')} "
            f"skipped (same content already stored), {self.count('failed')} failed"
        )
        failed = self.failed
        if failed:
            lines = [f"  {o.item.local_path} -> {o.item.cos_path}: {o.error}" for o in failed[:20]]
            if len(failed) > 20:
                lines.append(f"  ... and {len(failed) - 20} more")
            text += "\n" + "\n".join(lines)
        return text

    def raise_for_failures(self) -> None:
        failed = self.failed
        if failed:
            raise CosBatchError(self.summary(), {o.item.local_path: o.error for o in failed if o.error is not None})


def local_digest(path: str, *, crc: bool, chunk_size: int = 4 * 1024 * 1024) -> str:
    """SHA-1 hex (``crc=False``) or CRC64 decimal of a local file."""
    sha = hashlib.sha1()
    crc64 = Crc64()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(chunk_size), b""):
                if crc:
                    crc64.update(chunk)
                else:
                    sha.update(chunk)
    except OSError as e:
        raise local_io_error(e, "read", path) from e
    return crc64.decimal() if crc else sha.hexdigest()


def already_stored(info: StatInfo | None, local_path: str, *, crc: bool) -> bool:
    """True when the object ``info`` describes holds the local file's content (size, then checksum)."""
    if info is None or info.is_folder or not info.complete:
        return False
    try:
        size = os.path.getsize(local_path)
    except OSError:
        return False
    if info.filesize != size:
        return False
    remote = str(info.raw.get("crc64") or "") if crc else (info.sha or "").lower()
    return bool(remote) and remote == local_digest(local_path, crc=crc)


def run_batch(
    items: Sequence[BatchItem],
    upload_one: Callable[[BatchItem, Callable[[int], Executor]], UploadResult],
    stat: Callable[[str], StatInfo | None],
    resource_path: Callable[[str], str],
    *,
    max_workers: int,
    crc: bool,
    skip_identical: bool = True,
    on_done: Callable[[FileOutcome, int, int], Any] | None = None,
    stop: threading.Event | None = None,
) -> BatchResult:
    """Upload every item (see the module doc); never raises for one file's failure."""
    pool = SharedPool(max_workers)
    outcomes: list[FileOutcome | None] = [None] * len(items)
    finished = 0
    lock = threading.Lock()

    def one(index: int, item: BatchItem) -> None:
        nonlocal finished
        outcome: FileOutcome
        try:
            if stop is not None and stop.is_set():
                raise CosError("batch cancelled before this file started", path=item.cos_path)
            if skip_identical and already_stored(stat(item.cos_path), item.local_path, crc=crc):
                outcome = FileOutcome(item, "skipped", resource_path(item.cos_path))
            else:
                result = upload_one(item, pool.factory)
                outcome = FileOutcome(item, "uploaded", result.resource_path, result)
        except Exception as e:  # reported in the result, never raised across threads
            outcome = FileOutcome(item, "failed", resource_path(item.cos_path), error=e)
        outcomes[index] = outcome
        with lock:
            finished += 1
            done = finished
        if on_done is not None:
            on_done(outcome, done, len(items))

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers, thread_name_prefix="cos-file") as files:
            for future in [files.submit(one, i, item) for i, item in enumerate(items)]:
                future.result()
    finally:
        pool.close()
    return BatchResult([o for o in outcomes if o is not None])


def expand_local_paths(local_path: str | Sequence[str], prefix: str) -> list[BatchItem]:
    """The files of a directory (recursively), a glob pattern (``**`` allowed) or a list of files, each
    paired with its object path under the folder ``prefix`` (``/dir/``): a directory's or a glob's
    files keep their path relative to the directory (the glob's part before its first wildcard); a
    list's files keep their base name. Raises :class:`CosLocalFileError` for nothing to upload or a
    missing entry, :class:`CosConfigError` for two files mapped to one object."""
    import glob

    from airflow_provider_cos.protocol.errors import CosConfigError, CosLocalFileError

    pairs: list[tuple[str, str]] = []
    if isinstance(local_path, str) and os.path.isdir(local_path):
        for root, dirs, files in os.walk(local_path):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                pairs.append((full, os.path.relpath(full, local_path)))
    elif isinstance(local_path, str) and glob.has_magic(local_path):
        parts = local_path.split(os.sep)
        fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
        base = os.sep.join(parts[:fixed]) or "."
        for full in sorted(glob.glob(local_path, recursive=True)):
            if os.path.isfile(full):
                pairs.append((full, os.path.relpath(full, base)))
    elif isinstance(local_path, str):
        raise CosLocalFileError("a single file is not a batch: give a directory, a glob or a list", path=local_path)
    else:
        for entry in local_path:
            if not os.path.isfile(entry):
                raise CosLocalFileError("list entry is not an existing file", path=str(entry))
            pairs.append((str(entry), os.path.basename(entry)))
    if not pairs:
        raise CosLocalFileError("matches no file", path=str(local_path))
    items: dict[str, BatchItem] = {}
    for full, rel in pairs:
        cos_path = prefix.rstrip("/") + "/" + rel.replace(os.sep, "/")
        if cos_path in items:
            raise CosConfigError(f"{items[cos_path].local_path} and {full} would both be {cos_path}")
        items[cos_path] = BatchItem(full, cos_path)
    return list(items.values())
