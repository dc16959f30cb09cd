"""On-disk state of one emulated bucket: objects, folders and open slice sessions.

Layout under ``<data_dir>/buckets/<appid>-<bucket>/``::

    objects/<sha256(path)>.json    metadata of one file or folder (the object is visible iff this exists)
    blobs/<uuid>                   content of a file (referenced by its metadata)
    sessions/<sha256(id)>/session.json, <offset>.slice   an open slice upload and its received slices

No user-supplied string is ever used as a file name (paths and session ids are hashed), so nothing can
escape the data directory. Every metadata file is written to a temporary name and renamed, and a file
becomes visible only when its metadata is renamed into place, so a crash never exposes a half-written
object. A slice is streamed to a spool file first and renamed into its session directory; received
slices are rediscovered from the directory on restart. Metadata is guarded by :attr:`BucketStore.lock`
(a re-entrant lock); slice data is written outside it. Each session has its own ``finish_lock``
serialising its completion.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from airflow_provider_cos.protocol.sha1parts import Sha1State

CHUNK = 1024 * 1024


def _hash_name(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, separators=(",", ":"))
    os.replace(tmp, path)


def parent_of(path: str) -> str:
    """Parent folder (ending in ``/``) of a file path ``/a/b`` or folder path ``/a/b/``."""
    stripped = path.rstrip("/")
    return stripped[: stripped.rfind("/") + 1] or "/"


@dataclass
class ObjectMeta:
    """A file or folder. ``blob`` names the content file; ``session`` the slice session that made it."""

    path: str
    kind: Literal["file", "folder"]
    ctime: int
    mtime: int
    biz_attr: str = ""
    filesize: int = 0
    sha: str = ""
    blob: str = ""
    session: str = ""

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]


@dataclass
class SessionState:
    """An open slice upload. ``received`` maps slice offset to length (rebuilt from disk on load)."""

    session: str
    path: str
    api_version: str
    filesize: int
    slice_size: int
    sha: str = ""
    uploadparts: list[dict[str, Any]] | None = None
    biz_attr: str = ""
    insert_only: bool = False
    ctime: int = 0
    received: dict[int, int] = field(default_factory=dict)
    finish_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("received", "finish_lock")}

    @property
    def bytes_received(self) -> int:
        return sum(self.received.values())

    def expected_offsets(self) -> list[int]:
        if self.filesize == 0:
            return [0]
        return list(range(0, self.filesize, self.slice_size))

    def slice_length(self, offset: int) -> int:
        return min(self.slice_size, self.filesize - offset)

    def first_missing(self) -> int:
        """Where a v1 client should continue: the first offset not yet received (``filesize`` if none)."""
        for offset in self.expected_offsets():
            if offset not in self.received:
                return offset
        return self.filesize

    @property
    def complete(self) -> bool:
        return all(self.received.get(o) == self.slice_length(o) for o in self.expected_offsets())


@dataclass(frozen=True)
class Assembled:
    """A completed session's bytes in a temporary file, with the SHA-1 and intermediate states."""

    tmp_path: Path
    size: int
    sha: str
    states: dict[int, str]


class SessionGone(Exception):
    """The session was discarded or completed while a request was using it."""


class BucketStore:
    """Persistent state of one bucket. See the module docstring for the layout and the guarantees."""

    def __init__(self, root: Path, tmp_dir: Path) -> None:
        self.root = root
        self.tmp_dir = tmp_dir
        self.objects_dir = root / "objects"
        self.blobs_dir = root / "blobs"
        self.sessions_dir = root / "sessions"
        for directory in (self.objects_dir, self.blobs_dir, self.sessions_dir, tmp_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._objects: dict[str, ObjectMeta] = {}
        self._sessions: dict[str, SessionState] = {}
        self._session_at: dict[str, str] = {}
        self._load()

    # ------------------------------------------------------------------------------------- loading
    def _load(self) -> None:
        for meta_file in self.objects_dir.glob("*.json"):
            try:
                data = json.loads(meta_file.read_text("utf-8"))
                meta = ObjectMeta(**data)
            except (OSError, ValueError, TypeError):
                continue
            self._objects[meta.path] = meta
        referenced = {m.blob for m in self._objects.values() if m.blob}
        for blob in self.blobs_dir.iterdir():
            if blob.name not in referenced:
                blob.unlink(missing_ok=True)
        for sdir in self.sessions_dir.iterdir():
            try:
                data = json.loads((sdir / "session.json").read_text("utf-8"))
                state = SessionState(**data)
            except (OSError, ValueError, TypeError):
                shutil.rmtree(sdir, ignore_errors=True)
                continue
            for part in sdir.glob("*.slice"):
                with contextlib.suppress(ValueError, OSError):
                    state.received[int(part.stem)] = part.stat().st_size
            self._sessions[state.session] = state
            self._session_at[state.path] = state.session

    # ------------------------------------------------------------------------------------- objects
    def get(self, path: str) -> ObjectMeta | None:
        with self.lock:
            return self._objects.get(path)

    def folder_exists(self, folder: str) -> bool:
        if folder == "/":
            return True
        meta = self.get(folder)
        return meta is not None and meta.kind == "folder"

    def find_by_sha(self, sha: str, size: int) -> ObjectMeta | None:
        with self.lock:
            for meta in self._objects.values():
                if meta.kind == "file" and meta.sha == sha and meta.filesize == size:
                    return meta
        return None

    def blob_path(self, meta: ObjectMeta) -> Path:
        return self.blobs_dir / meta.blob

    def _write_meta(self, meta: ObjectMeta) -> None:
        write_json_atomic(self.objects_dir / f"{_hash_name(meta.path)}.json", asdict(meta))

    def put_folder(self, path: str, biz_attr: str) -> ObjectMeta:
        now = int(time.time())
        meta = ObjectMeta(path=path, kind="folder", ctime=now, mtime=now, biz_attr=biz_attr)
        with self.lock:
            self._write_meta(meta)
            self._objects[path] = meta
        return meta

    def commit_file(self, path: str, content: Path, *, size: int, sha: str, biz_attr: str,
                    session: str = "", link: bool = False) -> ObjectMeta:
        """Make ``content`` the object at ``path`` (moved, or hard-linked/copied if ``link``), atomically."""
        blob = uuid.uuid4().hex
        target = self.blobs_dir / blob
        if link:
            try:
                os.link(content, target)
            except OSError:
                shutil.copyfile(content, target)
        else:
            os.replace(content, target)
        now = int(time.time())
        with self.lock:
            old = self._objects.get(path)
            ctime = old.ctime if old is not None and old.kind == "file" else now
            meta = ObjectMeta(path=path, kind="file", ctime=ctime, mtime=now, biz_attr=biz_attr,
                              filesize=size, sha=sha, blob=blob, session=session)
            self._write_meta(meta)
            self._objects[path] = meta
        if old is not None and old.blob:
            (self.blobs_dir / old.blob).unlink(missing_ok=True)
        return meta

    def set_biz_attr(self, meta: ObjectMeta, biz_attr: str) -> None:
        with self.lock:
            meta.biz_attr = biz_attr
            meta.mtime = int(time.time())
            self._write_meta(meta)

    def delete(self, path: str) -> None:
        with self.lock:
            meta = self._objects.pop(path, None)
            if meta is None:
                return
            (self.objects_dir / f"{_hash_name(path)}.json").unlink(missing_ok=True)
        if meta.blob:
            (self.blobs_dir / meta.blob).unlink(missing_ok=True)

    def children(self, folder: str) -> list[ObjectMeta | SessionState]:
        """Direct children of ``folder`` (objects and open sessions without an object), sorted by name."""
        with self.lock:
            items: dict[str, ObjectMeta | SessionState] = {}
            for path, meta in self._objects.items():
                if path != folder and parent_of(path) == folder:
                    items[path] = meta
            for path, sid in self._session_at.items():
                if parent_of(path) == folder:
                    items[path] = self._sessions[sid]
        return [items[k] for k in sorted(items, key=lambda p: p.rstrip("/").rsplit("/", 1)[-1])]

    def has_descendants(self, folder: str) -> bool:
        with self.lock:
            return any(p != folder and p.startswith(folder) for p in self._objects) or any(
                p.startswith(folder) for p in self._session_at)

    # ------------------------------------------------------------------------------------ sessions
    def _session_dir(self, session: str) -> Path:
        return self.sessions_dir / _hash_name(session)[:40]

    def session(self, session: str) -> SessionState | None:
        with self.lock:
            return self._sessions.get(session)

    def session_at(self, path: str) -> SessionState | None:
        with self.lock:
            sid = self._session_at.get(path)
            return self._sessions.get(sid) if sid else None

    def open_session(self, state: SessionState) -> SessionState:
        with self.lock:
            old = self._session_at.get(state.path)
            if old:
                self.discard_session(old)
            sdir = self._session_dir(state.session)
            sdir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(sdir / "session.json", state.to_json())
            self._sessions[state.session] = state
            self._session_at[state.path] = state.session
        return state

    def discard_session(self, session: str) -> None:
        with self.lock:
            state = self._sessions.pop(session, None)
            if state is None:
                return
            if self._session_at.get(state.path) == session:
                del self._session_at[state.path]
            sdir = self._session_dir(session)
            # Rename first so that a concurrent slice rename into it fails instead of resurrecting it.
            graveyard = self.tmp_dir / f"gone-{uuid.uuid4().hex}"
            try:
                os.replace(sdir, graveyard)
            except OSError:
                graveyard = sdir
        shutil.rmtree(graveyard, ignore_errors=True)

    def add_slice(self, state: SessionState, offset: int, spooled: Path, length: int) -> None:
        """Move a spooled slice into the session (idempotent: a re-sent slice replaces the old copy)."""
        target = self._session_dir(state.session) / f"{offset}.slice"
        try:
            os.replace(spooled, target)
        except FileNotFoundError:
            raise SessionGone(state.session) from None
        with self.lock:
            if self._sessions.get(state.session) is not state:
                target.unlink(missing_ok=True)
                raise SessionGone(state.session)
            state.received[offset] = length

    def assemble(self, state: SessionState, checkpoints: set[int]) -> Assembled:
        """Concatenate the session's slices into a temporary file, hashing on the way.

        ``checkpoints`` are byte offsets (multiples of 64) at which the SHA-1 chaining state is recorded
        (for ``uploadparts``). Call with ``state.finish_lock`` held. Raises :class:`SessionGone`.
        """
        sdir = self._session_dir(state.session)
        tmp = self.tmp_dir / f"assemble-{uuid.uuid4().hex}"
        sha_state = Sha1State() if checkpoints else None
        plain = hashlib.sha1() if sha_state is None else None
        states: dict[int, str] = {}
        pos = 0
        try:
            with open(tmp, "wb") as out:
                for offset in state.expected_offsets():
                    try:
                        src = open(sdir / f"{offset}.slice", "rb")  # noqa: SIM115
                    except FileNotFoundError:
                        raise SessionGone(state.session) from None
                    with src:
                        while True:
                            chunk = src.read(CHUNK)
                            if not chunk:
                                break
                            out.write(chunk)
                            if plain is not None:
                                plain.update(chunk)
                            else:
                                assert sha_state is not None
                                for piece in _split_at(chunk, pos, checkpoints):
                                    sha_state.update(piece)
                                    end = sha_state.length
                                    if end in checkpoints and end % 64 == 0:
                                        states[end] = sha_state.state_hex()
                            pos += len(chunk)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        digest = plain.hexdigest() if plain is not None else sha_state.hexdigest()  # type: ignore[union-attr]
        return Assembled(tmp, pos, digest, states)

    def sessions(self) -> Iterator[SessionState]:
        with self.lock:
            yield from list(self._sessions.values())


def _split_at(chunk: bytes, pos: int, cuts: set[int]) -> Iterator[memoryview]:
    """Split ``chunk`` (which starts at file offset ``pos``) at every offset in ``cuts``."""
    view = memoryview(chunk)
    end = pos + len(chunk)
    inner = sorted(c for c in cuts if pos < c < end)
    start = 0
    for cut in inner:
        yield view[start : cut - pos]
        start = cut - pos
    yield view[start:]
