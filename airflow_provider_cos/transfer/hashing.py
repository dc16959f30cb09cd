"""The hash pass: one sequential read of the file, the whole-file SHA-1 and (v2) the ``uploadparts``.

The file is read with ``readinto`` into one reused buffer (``chunk_size`` bytes, 1-8 MiB is the sweet
spot), so memory is constant and the speed is hashlib's: v1 uses ``hashlib.sha1``; v2 needs the SHA-1
chaining state at every slice boundary, which :class:`UploadPartsHasher` reads from OpenSSL's
``SHA1_Update`` (one SHA-1 computation serves both the digest and the states).
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass

from airflow_provider_cos.protocol.errors import CosCancelledError, CosFileChangedError
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


def check_unchanged(path: str, fd: int | None, expected: FileIdentity) -> None:
    """Raise :class:`CosFileChangedError` if the file (by path and, if given, by descriptor) changed."""
    try:
        now = FileIdentity.of_path(path)
    except OSError as e:
        raise CosFileChangedError(f"local file disappeared during the transfer: {e.strerror or e}", path=path) from e
    if now != expected:
        raise CosFileChangedError(f"local file changed during the transfer ({expected.differences(now)})", path=path)
    if fd is not None and FileIdentity.of_stat(os.fstat(fd)) != expected:
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
    it is hashed (checked before and after: :class:`CosFileChangedError`). ``cancel`` is polled
    between chunks (:class:`CosCancelledError`).
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
            n = f.readinto(view[:want])
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
    if hasher is not None:
        digest, parts = hasher.finish()
        return FileDigest(identity, digest, tuple(parts), parts_slice_size)
    assert plain is not None
    return FileDigest(identity, plain.hexdigest(), None)
