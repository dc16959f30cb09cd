"""Where resume state lives: a tiny protocol and a local, atomically written JSON implementation.

A checkpoint never stands in for the file's content. It names the session a *new* process should
continue and the sessions this upload opened earlier (so that a leftover of ours can be told from a
live upload of another writer); it is trusted only after the whole-file SHA-1, computed again from the
file, equals the one it records. The server remains the source of truth for which slices it holds. A
checkpoint for another destination or of another format version is discarded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

CHECKPOINT_VERSION = 2
#: Environment variable naming the default directory of :class:`LocalCheckpointStore`.
CHECKPOINT_DIR_ENV = "COS_CHECKPOINT_DIR"


@runtime_checkable
class CheckpointStore(Protocol):
    """Load/save/delete a JSON-serialisable dict by key. Implementations must tolerate concurrent use
    by one writer and must make ``save`` atomic (a reader never sees half a checkpoint)."""

    def load(self, key: str) -> dict[str, Any] | None: ...

    def save(self, key: str, state: dict[str, Any]) -> None: ...

    def delete(self, key: str) -> None: ...


def default_checkpoint_dir() -> str:
    configured = os.environ.get(CHECKPOINT_DIR_ENV)
    if configured:
        return configured
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "airflow-provider-cos", "checkpoints")


class LocalCheckpointStore:
    """One JSON file per key in ``directory`` (created on demand), written via temp file + ``os.replace``."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = os.fspath(directory) if directory is not None else default_checkpoint_dir()

    def _file(self, key: str) -> str:
        safe = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return os.path.join(self.directory, f"{safe}.json")

    def load(self, key: str) -> dict[str, Any] | None:
        try:
            with open(self._file(key), encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None  # unreadable or torn: as good as absent
        return data if isinstance(data, dict) else None

    def save(self, key: str, state: dict[str, Any]) -> None:
        os.makedirs(self.directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".ckpt-", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(state, f, separators=(",", ":"), sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._file(key))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._file(key))


def checkpoint_key(endpoint: str, appid: str, bucket: str, cos_path: str, local_path: str) -> str:
    """Stable key of one (destination, source) pair: SHA-256 over the five identifying strings."""
    text = "\n".join((endpoint, appid, bucket, cos_path, os.path.abspath(local_path)))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class UploadCheckpoint:
    """The resume state of one slice upload (a few hundred bytes).

    ``size``..``ctime_ns`` and ``sha1`` describe the file when it was hashed; ``session`` is the session
    opened for that content. ``earlier_session``/``earlier_sha1`` remember a session this upload opened
    for *other* content (the file was rewritten since) until a new session replaces it.
    """

    local_path: str
    size: int
    mtime_ns: int
    sha1: str
    api_version: str
    bucket: str
    cos_path: str
    dev: int = 0
    ino: int = 0
    ctime_ns: int = 0
    session: str | None = None
    slice_size: int | None = None
    earlier_session: str | None = None
    earlier_sha1: str | None = None
    version: int = CHECKPOINT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UploadCheckpoint | None:
        """Parse a stored dict; ``None`` when it is malformed or from another format version."""
        try:
            if data.get("version") != CHECKPOINT_VERSION:
                return None
            sha1 = str(data["sha1"]).lower()
            if len(sha1) != 40:
                return None
            return cls(
                local_path=str(data["local_path"]),
                size=int(data["size"]),
                mtime_ns=int(data["mtime_ns"]),
                sha1=sha1,
                api_version=str(data["api_version"]),
                bucket=str(data["bucket"]),
                cos_path=str(data["cos_path"]),
                dev=int(data.get("dev") or 0),
                ino=int(data.get("ino") or 0),
                ctime_ns=int(data.get("ctime_ns") or 0),
                session=_opt_str(data.get("session")),
                slice_size=int(data["slice_size"]) if data.get("slice_size") else None,
                earlier_session=_opt_str(data.get("earlier_session")),
                earlier_sha1=_opt_str(data.get("earlier_sha1")),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def same_destination(self, *, local_path: str, api_version: str, bucket: str, cos_path: str) -> bool:
        """The checkpoint was written for this (local file path, generation, bucket, object path)."""
        return (
            self.local_path == local_path
            and self.api_version == api_version
            and self.bucket == bucket
            and self.cos_path == cos_path
        )

    def same_content(self, *, size: int, sha1: str) -> bool:
        """The file hashed now (``sha1`` computed in this process) is the one the checkpoint describes."""
        return self.size == size and self.sha1 == sha1.lower()

    @property
    def own_sessions(self) -> frozenset[str]:
        """Sessions this upload opened: never another writer's."""
        return frozenset(s for s in (self.session, self.earlier_session) if s)


def _opt_str(value: object) -> str | None:
    return str(value) if value else None
