"""Downloads: one object into one local file, in ranged parts, verified, then renamed into place.

The object is ``stat``-ed first (its size and its checksum decide everything: SHA-1 from a JSON
generation's ``stat``, CRC64 from the XML API's ``HeadObject``), then its bytes are fetched as
``(offset, length)`` parts of ``TransferConfig.download_part_size``, at most ``max_workers`` in flight on
the client's one connection pool, each retried by the client's :class:`RetryPolicy` (a reset, a 5xx, a
truncated or over-long answer). Each part is written with ``os.pwrite`` at its offset into a temporary
file beside the target (``.<name>.cosdownload``), so the download never holds more than the parts in
flight (``TransferConfig.download_memory_bound``).

Guarantees:

* ``local_path`` is only ever replaced whole: the bytes are checked (JSON: SHA-1 of the temporary file
  against ``stat``'s ``sha``; XML: the CRC64 of each part as it arrives, combined with
  :func:`crc64_fold` and compared with the object's ``x-cos-hash-crc64ecma``; sizes always), then the
  file is ``fsync``-ed and ``os.replace``-d onto it. A failure leaves ``local_path`` as it was (absent or
  the previous version).
* Resume: the parts already written are listed in ``.<name>.cosdownload.json`` (written after each part,
  atomically). A later download of the same object (same path, size, checksum, ETag, part size) to the
  same ``local_path`` fetches only the missing parts; anything else starts afresh. Resumed bytes are
  trusted only through the final check (for XML their CRCs are recomputed from the partial file): a
  mismatch discards the temporary file and raises :class:`CosIntegrityError` (the object changed during
  the download, or the partial file was altered).
* Progress is reported as for uploads (:class:`ProgressEvent`): bytes of received parts, and the bytes
  found in the partial file of an earlier try as ``bytes_found``.

The generation-specific part is one function, :data:`PartFetcher` (JSON: a signed ranged GET of the
object URL; XML: GetObject with ``Range``), given by the client.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from airflow_provider_cos.protocol.crc64 import Crc64, crc64_fold
from airflow_provider_cos.protocol.errors import (
    CosError,
    CosIntegrityError,
    CosInvalidRequestError,
    CosLocalFileError,
    CosNotFoundError,
    CosUnfinishedUploadError,
)
from airflow_provider_cos.protocol.messages import CosTarget, StatInfo
from airflow_provider_cos.protocol.paths import normalize_file_path
from airflow_provider_cos.transfer.config import TransferConfig
from airflow_provider_cos.transfer.coordinator import TransferCoordinator
from airflow_provider_cos.transfer.hashing import hash_file, local_io_error, open_regular_file
from airflow_provider_cos.transfer.plan import Slice

_log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".cosdownload"
STATE_SUFFIX = ".cosdownload.json"
_SHA1_HEX = frozenset("0123456789abcdef")

#: ``fetch(start, length, stop, on_retry)``: exactly ``length`` bytes of the object from ``start``, retried
#: by the client's policy (``stop`` cancels, ``on_retry`` is told of each retry); raises a typed error.
PartFetcher = Callable[[int, int, threading.Event, Callable[[CosError], None]], bytes]


@dataclass(frozen=True)
class RemoteObject:
    """What a download checks against: the size and one checksum (``sha1`` for JSON, ``crc64`` for XML;
    neither when the server reports none); ``etag`` (XML) also identifies the version for resume."""

    size: int
    sha1: str | None
    crc64: int | None
    etag: str | None = None

    @classmethod
    def of_stat(cls, info: StatInfo) -> RemoteObject:
        assert info.filesize is not None
        sha = (info.sha or "").lower()
        crc_text = str(info.raw.get("crc64") or "")
        return cls(
            size=info.filesize,
            sha1=sha if len(sha) == 40 and set(sha) <= _SHA1_HEX else None,
            crc64=int(crc_text) if crc_text.isdigit() else None,
            etag=str(info.raw["etag"]) if info.raw.get("etag") else None,
        )


@dataclass(frozen=True)
class DownloadResult:
    """What ``CosClient.download_file`` returns. ``bytes_received`` counts bytes of parts fetched by this
    call; ``bytes_resumed`` were found in the partial file of an earlier try; ``sha1`` (JSON) or ``crc64``
    (XML, decimal) is the verified checksum (``None`` when the server reported none: then only the size
    was checked)."""

    local_path: str
    cos_path: str
    resource_path: str
    size: int
    sha1: str | None
    crc64: str | None
    bytes_received: int
    parts_received: int
    bytes_resumed: int
    elapsed: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def partial_paths(local_path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """The temporary file and its resume state for a download to ``local_path``."""
    target = Path(local_path)
    return target.with_name(f".{target.name}{PARTIAL_SUFFIX}"), target.with_name(f".{target.name}{STATE_SUFFIX}")


def plan_parts(size: int, part_size: int) -> list[Slice]:
    """Every ``(offset, length)`` part of an object of ``size`` bytes (none for an empty object)."""
    return [
        Slice(offset, min(part_size, size - offset), offset + part_size >= size) for offset in range(0, size, part_size)
    ]


class FileDownload:
    """One download. Not reusable; ``run()`` once."""

    def __init__(
        self,
        *,
        fetch: PartFetcher,
        target: CosTarget,
        config: TransferConfig,
        coordinator: TransferCoordinator,
        cos_path: str,
        local_path: str | os.PathLike[str],
        stat: Callable[[str, CosTarget], StatInfo | None],
    ) -> None:
        self._fetch_part = fetch
        self._target = target
        self._config = config
        self._coordinator = coordinator
        self.cos_path = normalize_file_path(cos_path)
        self.local_path = Path(os.fspath(local_path))
        self._stat = stat
        self._partial, self._state_file = partial_paths(self.local_path)
        self._lock = threading.Lock()
        self._done: set[int] = set()
        self._crcs: dict[int, int] = {}  # part offset -> CRC64 of its bytes (XML)

    # ------------------------------------------------------------------ steps
    def run(self) -> DownloadResult:
        started = time.monotonic()
        self._check_local_target()
        remote = self._object_of(self._stat(self.cos_path, self._target))
        size = remote.size
        parts = plan_parts(size, self._config.download_part_size)
        state = {
            "cos_path": self.cos_path,
            "resource": self._target.fileid(self.cos_path),
            "size": size,
            "sha": remote.sha1,
            "crc64": remote.crc64,
            "etag": remote.etag,
            "part_size": self._config.download_part_size,
        }
        resumed = self._load_state(state)
        pending = [p for p in parts if p.offset not in self._done]
        bytes_resumed = sum(p.length for p in parts if p.offset in self._done)
        coordinator = self._coordinator
        coordinator.progress.total = size
        if bytes_resumed:
            coordinator.progress.position(bytes_resumed)
            _log.info(
                "resuming the download of %s: %d of %d bytes already in %s",
                self.cos_path,
                bytes_resumed,
                size,
                self._partial,
            )
        with_crc = remote.crc64 is not None
        fd = self._open_partial(size, fresh=not resumed)
        try:
            if with_crc:
                self._crc_of_resumed(fd, [p for p in parts if p.offset in self._done])
            coordinator.run_slices(
                pending,
                lambda part: self._fetch(fd, part, state, crc=with_crc),
                max_in_flight=max(1, min(self._config.max_workers, len(pending))),
            )
            try:
                os.fsync(fd)
            except OSError as e:
                raise local_io_error(e, "write", str(self._partial)) from e
        finally:
            coordinator.when_idle(lambda: os.close(fd))  # a cancelled worker may still be writing
        coordinator.progress.flush()
        checksum = self._verify(remote, parts)
        try:
            os.replace(self._partial, self.local_path)
        except OSError as e:
            raise local_io_error(e, "rename the downloaded file onto", str(self.local_path)) from e
        self._state_file.unlink(missing_ok=True)
        return DownloadResult(
            local_path=str(self.local_path),
            cos_path=self.cos_path,
            resource_path=self._target.fileid(self.cos_path),
            size=size,
            sha1=checksum if remote.sha1 is not None and not with_crc else None,
            crc64=checksum if with_crc else None,
            bytes_received=coordinator.bytes_sent,
            parts_received=coordinator.slices_sent,
            bytes_resumed=bytes_resumed,
            elapsed=time.monotonic() - started,
        )

    def _check_local_target(self) -> None:
        target = self.local_path
        if target.name in ("", ".", ".."):
            raise CosLocalFileError("local path names no file", path=str(target))
        if target.is_dir():
            raise CosLocalFileError("local path is a directory; give the file name to write", path=str(target))
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise local_io_error(e, "create the folder of", str(target)) from e

    def _object_of(self, info: StatInfo | None) -> RemoteObject:
        if info is None:
            raise CosNotFoundError("no such object", code=-166, operation="download", path=self.cos_path)
        if info.is_folder:
            raise CosInvalidRequestError("a folder cannot be downloaded", operation="download", path=self.cos_path)
        if not info.complete or info.filesize is None:
            raise CosUnfinishedUploadError(
                f"the object is still being uploaded ({info.filelen} of {info.filesize} bytes stored)",
                operation="download",
                path=self.cos_path,
            )
        remote = RemoteObject.of_stat(info)
        if remote.sha1 is None and remote.crc64 is None:
            _log.warning(
                "the server reports no SHA-1 or CRC64 for %s: the download is checked by size only", self.cos_path
            )
        return remote

    # ------------------------------------------------------------------ partial file and its state
    def _load_state(self, expected: dict[str, Any]) -> bool:
        """True when the partial file belongs to this very object: its recorded parts are then skipped."""
        try:
            saved = json.loads(self._state_file.read_text(encoding="utf-8"))
            fits = (
                isinstance(saved, dict)
                and all(saved.get(k) == v for k, v in expected.items())
                and self._partial.stat().st_size == expected["size"]
            )
            done = saved.get("done", []) if fits else []
            part_size = int(expected["part_size"])
            self._done = {o for o in done if isinstance(o, int) and 0 <= o < expected["size"] and o % part_size == 0}
            return bool(fits)
        except (OSError, ValueError):
            self._done = set()
            return False

    def _save_state(self, state: dict[str, Any]) -> None:
        tmp = self._state_file.with_name(self._state_file.name + ".tmp")
        try:
            tmp.write_text(json.dumps({**state, "done": sorted(self._done)}), encoding="utf-8")
            os.replace(tmp, self._state_file)
        except OSError as e:  # only resume is lost; the download goes on
            _log.warning("cannot record download progress in %s: %s", self._state_file, e.strerror or e)

    def _open_partial(self, size: int, *, fresh: bool) -> int:
        path = str(self._partial)
        try:
            if fresh:
                self._state_file.unlink(missing_ok=True)
                self._partial.unlink(missing_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as e:
            raise local_io_error(e, "create", path) from e
        try:
            os.ftruncate(fd, size)
        except OSError as e:
            os.close(fd)
            raise local_io_error(e, "size", path) from e
        return fd

    def _discard_partial(self) -> None:
        for leftover in (self._partial, self._state_file):
            with contextlib.suppress(OSError):
                leftover.unlink(missing_ok=True)

    # ------------------------------------------------------------------ one part (worker thread)
    def _fetch(self, fd: int, part: Slice, state: dict[str, Any], *, crc: bool) -> None:
        coordinator = self._coordinator

        def on_retry(_error: CosError) -> None:
            coordinator.record_retry()

        data = self._fetch_part(part.offset, part.length, coordinator.stop, on_retry)
        if len(data) != part.length:  # the fetcher's contract; a short part is never recorded as done
            raise CosIntegrityError(
                f"part at {part.offset}: {len(data)} bytes instead of {part.length}",
                operation="download",
                path=self.cos_path,
            )
        part_crc = Crc64(data).value if crc else None
        view = memoryview(data)
        written = 0
        try:
            while written < len(view):
                written += os.pwrite(fd, view[written:], part.offset + written)
        except OSError as e:
            raise local_io_error(e, "write", str(self._partial)) from e
        coordinator.record_sent(part.length)
        coordinator.progress.add(part.length)
        with self._lock:
            self._done.add(part.offset)
            if part_crc is not None:
                self._crcs[part.offset] = part_crc
            self._save_state(state)

    # ------------------------------------------------------------------ integrity
    def _crc_of_resumed(self, fd: int, resumed: list[Slice]) -> None:
        """CRC64 of each part found in the partial file, read back from it (the file is what counts)."""
        for part in resumed:
            crc = Crc64()
            offset = part.offset
            while offset < part.end:
                try:
                    chunk = os.pread(fd, min(self._config.hash_chunk_size, part.end - offset), offset)
                except OSError as e:
                    raise local_io_error(e, "read", str(self._partial)) from e
                if not chunk:
                    break
                crc.update(chunk)
                offset += len(chunk)
            self._crcs[part.offset] = crc.value

    def _verify(self, remote: RemoteObject, parts: list[Slice]) -> str | None:
        """The verified checksum (CRC64 decimal or SHA-1 hex), or ``None`` when there was none to check."""
        path = str(self._partial)
        fd, identity = open_regular_file(path)
        try:
            if identity.size != remote.size:
                self._discard_partial()
                raise CosIntegrityError(
                    f"downloaded {identity.size} bytes, the object has {remote.size}",
                    operation="download",
                    path=self.cos_path,
                )
            if remote.crc64 is not None:
                what, expected = "CRC64", str(remote.crc64)
                got = str(crc64_fold((self._crcs[p.offset], p.length) for p in parts))
            elif remote.sha1 is not None:
                what, expected = "SHA-1", remote.sha1
                got = hash_file(
                    fd,
                    identity,
                    path=path,
                    parts_slice_size=None,
                    chunk_size=self._config.hash_chunk_size,
                    cancel=self._coordinator.stop,
                ).sha1
            else:
                return None
        finally:
            os.close(fd)
        if got != expected:
            self._discard_partial()
            raise CosIntegrityError(
                f"{what} of the downloaded bytes {got} differs from the object's {expected} (changed during the "
                "download?); the partial file was discarded, a retry starts afresh",
                operation="download",
                path=self.cos_path,
            )
        return got
