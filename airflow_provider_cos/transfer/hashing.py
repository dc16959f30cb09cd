"""The hash pass: one sequential read of the file, the whole-file SHA-1 and (v2) the ``uploadparts``.

The file is read with ``readinto`` into one reused buffer (``chunk_size`` bytes, 1-8 MiB is the sweet
spot), so memory is constant and the speed is hashlib's: v1 uses ``hashlib.sha1``; v2 needs the SHA-1
chaining state at every slice boundary, which :class:`UploadPartsHasher` reads from OpenSSL's
``SHA1_Update`` (one SHA-1 computation serves both the digest and the states).
"""

from __future__ import annotations

import hashlib
import os
import stat as stat_mod
import threading
from dataclasses import dataclass

from airflow_provider_cos.protocol.errors import CosCancelledError, CosFileChangedError, CosLocalFileError
from airflow_provider_cos.protocol.sha1parts import UploadPart, UploadPartsHasher


@dataclass(frozen=True)
class FileIdentity:
    """What "the same file" means while one transfer runs: size, mtime, device, inode and ctime (ns).

    ``utime`` can put an old mtime back on new content (``cp -p``, ``rsync -t``, tar), but not the ctime,
    and a file replaced by rename has another inode. Across processes the identity is only a hint: a
    resume trusts nothing cached before the whole-file SHA-1 was computed again.
    """

    size: int
    mtime_ns: int
    dev: int = 0
    ino: int = 0
    ctime_ns: int = 0

    @classmethod
    def of_stat(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino, st.st_ctime_ns)

    @classmethod
    def of_path(cls, path: str) -> FileIdentity:
        return cls.of_stat(os.stat(path))

    def differences(self, other: FileIdentity) -> str:
        """``"size 1 -> 2, ctime_ns 5 -> 6"``: the fields that differ, for messages."""
        return ", ".join(
            f"{name} {getattr(self, name)} -> {getattr(other, name)}"
            for name in ("size", "mtime_ns", "dev", "ino", "ctime_ns")
            if getattr(self, name) != getattr(other, name)
        )


@dataclass(frozen=True)
class FileDigest:
    identity: FileIdentity
    sha1: str
    parts: tuple[UploadPart, ...] | None  # None when not computed (v1, or skipped thanks to a checkpoint)
    parts_slice_size: int | None = None


_KINDS = (
    (stat_mod.S_ISDIR, "directory"),
    (stat_mod.S_ISFIFO, "FIFO"),
    (stat_mod.S_ISSOCK, "socket"),
    (stat_mod.S_ISCHR, "character device"),
    (stat_mod.S_ISBLK, "block device"),
)


def _require_regular(st: os.stat_result, path: str) -> None:
    if not stat_mod.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "special file")
        raise CosLocalFileError(f"local path is not a regular file but a {kind}", path=path)


def local_io_error(e: OSError, what: str, path: str) -> CosLocalFileError:
    """``e`` as the typed error naming the file (raise it ``from e``)."""
    return CosLocalFileError(f"cannot {what} the local file: {e.strerror or e}", path=path)


def open_regular_file(path: str) -> tuple[int, FileIdentity]:
    """Open ``path`` read-only and return the descriptor and identity of what was opened.

    Only a regular file is accepted, and the call never blocks: ``stat`` refuses a FIFO, socket, device or
    directory before ``open``; ``O_NONBLOCK`` keeps a FIFO swapped in meanwhile from blocking the open, and
    ``fstat`` checks what was really opened. Every failure is a :class:`CosLocalFileError` naming the file.
    """
    try:
        _require_regular(os.stat(path), path)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise local_io_error(e, "open", path) from e
    try:
        st = os.fstat(fd)
        _require_regular(st, path)
    except BaseException as e:
        os.close(fd)
        if isinstance(e, OSError):
            raise local_io_error(e, "stat", path) from e
        raise
    return fd, FileIdentity.of_stat(st)


def check_ends_at(fd: int, size: int, path: str) -> None:
    """After ``size`` bytes were read: the file must end there. A file whose ``stat`` size understates its
    content (``/proc``, sysfs: size 0) would otherwise be uploaded truncated and reported as success."""
    try:
        extra = os.pread(fd, 1, size)
        now = os.fstat(fd).st_size
    except OSError as e:
        raise local_io_error(e, "read", path) from e
    if not extra:
        return
    if now != size:
        raise CosFileChangedError(f"local file grew during the transfer ({size} -> {now} bytes)", path=path)
    raise CosLocalFileError(
        f"local file holds more bytes than its size says ({size} bytes): a /proc, sysfs or "
        "other special file? Copy it to a regular file and upload that",
        path=path,
    )


def check_unchanged(path: str, fd: int | None, expected: FileIdentity) -> None:
    """Raise :class:`CosFileChangedError` if the file (by path and, if given, by descriptor) changed."""
    try:
        now = FileIdentity.of_path(path)
    except OSError as e:
        raise CosFileChangedError(f"local file disappeared during the transfer: {e.strerror or e}", path=path) from e
    if now != expected:
        raise CosFileChangedError(f"local file changed during the transfer ({expected.differences(now)})", path=path)
    try:
        opened = FileIdentity.of_stat(os.fstat(fd)) if fd is not None else expected
    except OSError as e:
        raise local_io_error(e, "stat", path) from e
    if opened != expected:
        raise CosFileChangedError("local file was replaced during the transfer", path=path)


def hash_file(
    fd: int,
    identity: FileIdentity,
    *,
    path: str,
    parts_slice_size: int | None,
    chunk_size: int = 4 * 1024 * 1024,
    cancel: threading.Event | None = None,
) -> FileDigest:
    """Hash ``identity.size`` bytes of ``fd`` from offset 0 in one pass.

    With ``parts_slice_size`` the v2 ``uploadparts`` are computed too. The file must not change while
    it is hashed (checked after: :class:`CosFileChangedError`) and must end at ``identity.size``
    (:func:`check_ends_at`); read errors are :class:`CosLocalFileError`. ``cancel`` is polled between
    chunks (:class:`CosCancelledError`).
    """
    size = identity.size
    buffer = bytearray(min(chunk_size, max(size, 1)))
    view = memoryview(buffer)
    hasher: UploadPartsHasher | None = None
    plain = None
    if parts_slice_size is not None:
        hasher = UploadPartsHasher(size, parts_slice_size)
    else:
        plain = hashlib.sha1()
    offset = 0
    with os.fdopen(os.dup(fd), "rb", buffering=0) as f:
        f.seek(0)
        while offset < size:
            if cancel is not None and cancel.is_set():
                raise CosCancelledError("upload cancelled during the hash pass", path=path)
            want = min(len(buffer), size - offset)
            try:
                n = f.readinto(view[:want])
            except OSError as e:
                raise local_io_error(e, "read", path) from e
            if not n:
                raise CosFileChangedError(f"local file shrank while hashing (EOF at {offset} of {size})", path=path)
            chunk = view[:n]
            if hasher is not None:
                hasher.update(chunk)
            else:
                assert plain is not None
                plain.update(chunk)
            offset += n
    check_unchanged(path, fd, identity)
    check_ends_at(fd, size, path)
    if hasher is not None:
        digest, parts = hasher.finish()
        return FileDigest(identity, digest, tuple(parts), parts_slice_size)
    assert plain is not None
    return FileDigest(identity, plain.hexdigest(), None)
