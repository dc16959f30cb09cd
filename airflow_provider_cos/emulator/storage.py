"""On-disk state of one emulated bucket: objects, folders, open slice sessions and XML multipart uploads.

Layout under ``<data_dir>/buckets/<appid>-<bucket>/``::

    objects/<sha256(path)>.json    metadata of one file or folder (the object is visible iff this exists)
    blobs/<uuid>                   content of a file (referenced by its metadata)
    sessions/<sha256(id)>/session.json   an open slice upload
                         /data           its content, created at init with the declared size (sparse)
                         /received       journal of received slices (``+offset length`` / ``-offset`` lines)
    uploads/<sha256(uploadId)>/upload.json   an XML multipart upload
                              /part-<n>, part-<n>.json   a part and its size, MD5 and CRC-64

No user-supplied string is ever used as a file name (paths and session ids are hashed), so nothing can
escape the data directory. Every metadata file is written to a temporary name and renamed, and a file
becomes visible only when its metadata is renamed into place, so a crash never exposes a half-written
object.

Slice data is written with ``os.pwrite`` straight into the session's ``data`` file at its offset, by as
many request threads as there are slices in flight (:class:`SliceWriter`). Writers of the *same* slice
are serialised by a per-slice lock. A slice is un-received (journal ``-offset``) before its first byte is
written and counts as received (journal ``+offset length``) only after all its bytes are written and the
request was accepted, so a connection dropped mid-body, or a restart with a half-written slice, leaves
it missing; a re-sent slice overwrites the same range (idempotent). Completion renames ``data`` into
``blobs/`` (no copy) after the SHA-1 check.

The SHA-1 is computed while the upload runs: :meth:`BucketStore.advance_hash` extends a running
:class:`Sha1State` over the contiguous prefix of received slices, reading them back from the page cache,
and records the chaining states at the ``uploadparts`` boundaries. Any thread that completes a slice
advances it when nobody else is (non-blocking); completion finishes whatever is left. A re-sent slice
below the hashed prefix resets it.

Locks: :attr:`BucketStore.lock` (re-entrant) guards the bucket's metadata; per session ``lock`` guards
``received`` and the hash bookkeeping (short sections only), ``hash_lock`` is held by the one thread
hashing, ``finish_lock`` serialises completion, and ``slice_locks`` serialise writers of one slice.
Order: ``finish_lock`` -> ``slice lock`` -> ``hash_lock`` -> ``lock``; ``BucketStore.lock`` is never
taken while a session ``lock`` is held.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from airflow_provider_cos.protocol.crc64 import Crc64
from airflow_provider_cos.protocol.sha1parts import Sha1State

CHUNK = 1024 * 1024
_pwrite = os.pwrite  # the one write of request data into storage (tests inject ENOSPC here)
STORAGE_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_storage_full(exc: BaseException) -> bool:
    """True for the OSError of a full disk or an exhausted quota."""
    return isinstance(exc, OSError) and exc.errno in STORAGE_FULL


def _hash_name(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves no half-written temporary file behind
        raise


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
    md5: str = ""  # hex; with crc64, filled in lazily for objects written through the JSON API
    crc64: str = ""  # decimal (x-cos-hash-crc64ecma)
    etag: str = ""  # quoted; set for multipart objects ("<hex>-<N>"), else the quoted md5
    content_type: str = ""

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]


_META_FIELDS = frozenset(ObjectMeta.__dataclass_fields__)


@dataclass
class PartMeta:
    """One uploaded part of a multipart upload (XML API)."""

    number: int
    size: int
    md5: str
    crc64: str
    mtime: float


@dataclass
class UploadState:
    """A multipart upload in progress (XML API): stored under ``uploads/<sha256(id)>/``."""

    upload_id: str
    path: str
    initiated: float
    content_type: str = ""
    parts: dict[int, PartMeta] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    _PERSISTED = ("upload_id", "path", "initiated", "content_type")


@dataclass
class SessionState:
    """An open slice upload. ``received`` maps slice offset to length (replayed from the journal on load).

    The fields after ``received`` are in-process bookkeeping (see the module docstring), not persisted.
    """

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
    alive: bool = field(default=True, repr=False, compare=False)
    finishing: bool = field(default=False, repr=False, compare=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    finish_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    hash_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    slice_locks: dict[int, threading.Lock] = field(default_factory=dict, repr=False, compare=False)
    generation: dict[int, int] = field(default_factory=dict, repr=False, compare=False)
    hash_state: Sha1State = field(default_factory=Sha1State, repr=False, compare=False)
    hash_pos: int = field(default=0, repr=False, compare=False)
    part_states: dict[int, str] = field(default_factory=dict, repr=False, compare=False)
    sdir: Path | None = field(default=None, repr=False, compare=False)
    touched: float = field(default=0.0, repr=False, compare=False)

    _PERSISTED = (
        "session",
        "path",
        "api_version",
        "filesize",
        "slice_size",
        "sha",
        "uploadparts",
        "biz_attr",
        "insert_only",
        "ctime",
    )

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._PERSISTED}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionState:
        return cls(**{name: data[name] for name in cls._PERSISTED if name in data})

    @property
    def bytes_received(self) -> int:
        return sum(self.received.values())

    def expected_offsets(self) -> list[int]:
        if self.filesize == 0:
            return [0]
        return list(range(0, self.filesize, self.slice_size))

    def slice_length(self, offset: int) -> int:
        return min(self.slice_size, self.filesize - offset)

    def valid_offset(self, offset: int) -> bool:
        if offset == 0:
            return True
        return 0 < offset < self.filesize and offset % self.slice_size == 0

    def first_missing(self) -> int:
        """Where a v1 client should continue: the first offset not yet received (``filesize`` if none)."""
        for offset in self.expected_offsets():
            if offset not in self.received:
                return offset
        return self.filesize

    def missing(self) -> list[int]:
        return [o for o in self.expected_offsets() if self.received.get(o) != self.slice_length(o)]

    @property
    def complete(self) -> bool:
        return not self.missing()

    def checkpoints(self) -> list[int]:
        """Byte offsets where the SHA-1 chaining state is recorded: the ``uploadparts`` inner boundaries."""
        if not self.uploadparts:
            return []
        return sorted({p["offset"] + p["datalen"] for p in self.uploadparts[:-1]})

    def _reset_hash(self) -> None:
        """Forget the running SHA-1 (call with ``lock`` held)."""
        self.hash_state = Sha1State()
        self.hash_pos = 0
        self.part_states = {}


@dataclass(frozen=True)
class Digest:
    """The SHA-1 of a complete session and its chaining states at the ``uploadparts`` boundaries."""

    sha: str
    states: dict[int, str]


class SessionGone(Exception):
    """The session was discarded or completed while a request was using it."""


class SessionBusy(Exception):
    """The session is being completed (or the slice is held too long by another writer)."""


SLICE_LOCK_TIMEOUT = 120.0
DEFAULT_SESSION_TTL = 24 * 3600.0  #: an unfinished upload idle this long is discarded (settings.session_ttl)
SWEEP_INTERVAL = 60.0  #: expired sessions are looked for at most this often (clock seconds)


class SliceWriter:
    """Writes one slice into its session's data file; :meth:`commit` or :meth:`abort` exactly once.

    Holds the slice's lock from creation to commit/abort. Bytes beyond the slice's length are counted
    but not written (the slice is then rejected by :meth:`commit`).
    """

    def __init__(self, store: BucketStore, state: SessionState, offset: int, fd: int, lock: threading.Lock) -> None:
        self.store = store
        self.state = state
        self.offset = offset
        self.expected = state.slice_length(offset)
        self.length = 0
        self._fd: int | None = fd
        self._lock: threading.Lock | None = lock

    def write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        room = self.expected - self.length
        if room > 0 and self._fd is not None:
            part = view[:room] if len(view) > room else view
            pos = self.offset + self.length
            while part:
                n = _pwrite(self._fd, part, pos)
                part = part[n:]
                pos += n
        self.length += len(view)

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    @property
    def open(self) -> bool:
        return self._lock is not None

    def commit(self) -> bool:
        """Count the slice as received if all its bytes arrived; False (and nothing counted) otherwise.

        Raises :class:`SessionGone` if the session was discarded meanwhile.
        """
        if self._lock is None:
            raise RuntimeError("SliceWriter already closed")
        try:
            if self.length != self.expected:
                return False
            state = self.state
            with state.lock:
                if not state.alive:
                    raise SessionGone(state.session)
                state.received[self.offset] = self.length
                state.touched = self.store.clock()
                self.store._journal(state, f"+{self.offset} {self.length}\n")
        finally:
            self._release()
        self.store.advance_hash(self.state, wait=False)
        return True

    def abort(self) -> None:
        if self._lock is not None:
            self._release()


class BucketStore:
    """Persistent state of one bucket. See the module docstring for the layout and the guarantees."""

    def __init__(
        self,
        root: Path,
        tmp_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
        session_ttl: Callable[[], float] = lambda: DEFAULT_SESSION_TTL,
    ) -> None:
        self.root = root
        self.tmp_dir = tmp_dir
        self.clock = clock
        self._session_ttl = session_ttl
        self._next_sweep = 0.0
        self.objects_dir = root / "objects"
        self.blobs_dir = root / "blobs"
        self.sessions_dir = root / "sessions"
        self.uploads_dir = root / "uploads"
        for directory in (self.objects_dir, self.blobs_dir, self.sessions_dir, self.uploads_dir, tmp_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._objects: dict[str, ObjectMeta] = {}
        self._sessions: dict[str, SessionState] = {}
        self._session_at: dict[str, str] = {}
        self._by_sha: dict[tuple[str, int], set[str]] = {}
        self._unhashed: dict[int, set[str]] = {}  # size -> files without a SHA-1 yet (multipart objects)
        self._uploads: dict[str, UploadState] = {}
        self._load()
        self._load_uploads()

    # ------------------------------------------------------------------------------------- loading
    def _load(self) -> None:
        for meta_file in self.objects_dir.glob("*.json"):
            try:
                data = json.loads(meta_file.read_text("utf-8"))
                meta = ObjectMeta(**{k: v for k, v in data.items() if k in _META_FIELDS})
            except (OSError, ValueError, TypeError):
                continue
            self._objects[meta.path] = meta
        referenced = {m.blob for m in self._objects.values() if m.blob}
        for blob in self.blobs_dir.iterdir():
            if blob.name not in referenced:
                blob.unlink(missing_ok=True)
        for meta in self._objects.values():
            self._index_add(meta)
        for sdir in self.sessions_dir.iterdir():
            try:
                data = json.loads((sdir / "session.json").read_text("utf-8"))
                state = SessionState.from_json(data)
                if not (sdir / "data").is_file():
                    raise ValueError("no data file")
            except (OSError, ValueError, TypeError, KeyError):
                shutil.rmtree(sdir, ignore_errors=True)
                continue
            self._replay_journal(state, sdir / "received")
            state.touched = max(p.stat().st_mtime for p in sdir.iterdir())  # last activity before the restart
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

    def _index_add(self, meta: ObjectMeta) -> None:
        if meta.kind == "file" and meta.sha:
            self._by_sha.setdefault((meta.sha, meta.filesize), set()).add(meta.path)
        elif meta.kind == "file":
            self._unhashed.setdefault(meta.filesize, set()).add(meta.path)

    def _index_remove(self, meta: ObjectMeta) -> None:
        index: dict[Any, set[str]] = self._by_sha if meta.sha else self._unhashed
        key: Any = (meta.sha, meta.filesize) if meta.sha else meta.filesize
        paths = index.get(key)
        if paths is not None:
            paths.discard(meta.path)
            if not paths:
                del index[key]

    def find_by_sha(self, sha: str, size: int) -> ObjectMeta | None:
        """A file with this content (SHA-1 and size), via the index (no scan). Files of that size whose
        SHA-1 is not known yet (multipart objects) are hashed first, once each."""
        with self.lock:
            for path in sorted(self._unhashed.get(size, ())):
                meta = self._objects.get(path)
                if meta is not None:
                    self.sha_of(meta)
            for path in sorted(self._by_sha.get((sha, size), ())):
                meta = self._objects.get(path)
                if meta is not None and meta.kind == "file" and meta.sha == sha and meta.filesize == size:
                    return meta
        return None

    def sha_of(self, meta: ObjectMeta) -> str:
        """The file's SHA-1, which only the JSON API answers (``stat``, list, instant upload, insertOnly).
        A multipart Complete does not read the object to compute it (nor does COS): it is computed here on
        first need, from the blob, then persisted and indexed."""
        if meta.kind != "file" or meta.sha:
            return meta.sha
        sha1 = hashlib.sha1()
        view = memoryview(bytearray(CHUNK))
        try:
            with open(self.blob_path(meta), "rb") as fh:
                while n := fh.readinto(view):
                    sha1.update(view[:n])
        except FileNotFoundError:  # replaced meanwhile: the newer object's
            current = self.get(meta.path)
            return self.sha_of(current) if current is not None and current is not meta else ""
        with self.lock:
            if self._objects.get(meta.path) is meta and not meta.sha:
                self._index_remove(meta)
                meta.sha = sha1.hexdigest()
                self._write_meta(meta)
                self._index_add(meta)
        return sha1.hexdigest()

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

    def commit_file(
        self,
        path: str,
        content: Path,
        *,
        size: int,
        sha: str,
        biz_attr: str,
        session: str = "",
        link: bool = False,
        md5: str = "",
        crc64: str = "",
        etag: str = "",
        content_type: str = "",
    ) -> ObjectMeta:
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
            meta = ObjectMeta(
                path=path,
                kind="file",
                ctime=ctime,
                mtime=now,
                biz_attr=biz_attr,
                filesize=size,
                sha=sha,
                blob=blob,
                session=session,
                md5=md5,
                crc64=crc64,
                etag=etag,
                content_type=content_type,
            )
            self._write_meta(meta)
            if old is not None:
                self._index_remove(old)
            self._objects[path] = meta
            self._index_add(meta)
        if old is not None and old.blob:
            (self.blobs_dir / old.blob).unlink(missing_ok=True)
        return meta

    def with_digests(self, meta: ObjectMeta) -> ObjectMeta:
        """``meta`` with what HEAD/GET/GetBucket answer: ``crc64`` and, unless the object has an ``etag`` of
        its own (multipart), ``md5``. Objects written through the XML API have them from their upload
        (nothing is read); for objects that the JSON API wrote they are computed once from the blob, then
        persisted. A multipart object's MD5 is not its ETag and is never computed."""
        if meta.kind != "file" or (meta.crc64 and (meta.md5 or meta.etag)):
            return meta
        md5 = None if meta.md5 or meta.etag else hashlib.md5()
        crc = Crc64()
        hashers = [h for h in (md5, crc) if h is not None]
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        try:
            with open(self.blob_path(meta), "rb") as fh:
                while n := fh.readinto(view):
                    for h in hashers:
                        h.update(view[:n])
        except FileNotFoundError:  # replaced meanwhile: the caller sees the newer object next time
            return meta
        with self.lock:
            current = self._objects.get(meta.path)
            if current is not meta:
                return current if current is not None else meta
            meta.md5 = meta.md5 or (md5.hexdigest() if md5 is not None else "")
            meta.crc64 = meta.crc64 or crc.decimal()
            self._write_meta(meta)
        return meta

    def files(self) -> list[ObjectMeta]:
        """Every object (files and folders), unsorted."""
        with self.lock:
            return list(self._objects.values())

    # ------------------------------------------------------------------------------------ multipart
    def _upload_dir(self, upload_id: str) -> Path:
        return self.uploads_dir / _hash_name(upload_id)[:40]

    def _load_uploads(self) -> None:
        for udir in self.uploads_dir.iterdir():
            try:
                data = json.loads((udir / "upload.json").read_text("utf-8"))
                state = UploadState(**{k: data[k] for k in UploadState._PERSISTED})
                for part_file in udir.glob("part-*.json"):
                    part = PartMeta(**json.loads(part_file.read_text("utf-8")))
                    if (udir / f"part-{part.number}").is_file():
                        state.parts[part.number] = part
            except (OSError, ValueError, TypeError, KeyError):
                shutil.rmtree(udir, ignore_errors=True)
                continue
            self._uploads[state.upload_id] = state

    def create_upload(self, path: str, content_type: str) -> UploadState:
        now = self.clock()
        upload_id = f"{int(now)}{uuid.uuid4().hex}{uuid.uuid4().hex}"  # COS form: 10 digits + 64 hex
        state = UploadState(upload_id, path, now, content_type)
        udir = self._upload_dir(upload_id)
        try:
            udir.mkdir(parents=True)
            write_json_atomic(udir / "upload.json", {k: getattr(state, k) for k in UploadState._PERSISTED})
        except BaseException:
            shutil.rmtree(udir, ignore_errors=True)
            raise
        with self.lock:
            self._uploads[upload_id] = state
        return state

    def upload(self, upload_id: str) -> UploadState | None:
        with self.lock:
            return self._uploads.get(upload_id)

    def uploads(self) -> list[UploadState]:
        with self.lock:
            return list(self._uploads.values())

    def put_part(self, state: UploadState, number: int, source: Path, *, size: int, md5: str, crc64: str) -> PartMeta:
        """Move a spooled part into the upload (a re-sent number replaces the earlier part)."""
        udir = self._upload_dir(state.upload_id)
        part = PartMeta(number, size, md5, crc64, self.clock())
        with state.lock:
            if self.upload(state.upload_id) is not state:
                raise SessionGone(state.upload_id)
            os.replace(source, udir / f"part-{number}")
            write_json_atomic(udir / f"part-{number}.json", asdict(part))
            state.parts[number] = part
        return part

    def part_path(self, state: UploadState, number: int) -> Path:
        return self._upload_dir(state.upload_id) / f"part-{number}"

    def discard_upload(self, upload_id: str) -> bool:
        with self.lock:
            state = self._uploads.pop(upload_id, None)
        if state is None:
            return False
        with state.lock:
            graveyard = self.tmp_dir / f"gone-{uuid.uuid4().hex}"
            try:
                os.replace(self._upload_dir(upload_id), graveyard)
            except OSError:
                graveyard = self._upload_dir(upload_id)
        shutil.rmtree(graveyard, ignore_errors=True)
        return True

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
            self._index_remove(meta)
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
            for path, sid in self._session_at.items():  # a complete object is listed, not its new upload
                if parent_of(path) == folder and path not in items:
                    items[path] = self._sessions[sid]
        return [items[k] for k in sorted(items, key=lambda p: p.rstrip("/").rsplit("/", 1)[-1])]

    def has_descendants(self, folder: str) -> bool:
        with self.lock:
            return any(p != folder and p.startswith(folder) for p in self._objects) or any(
                p.startswith(folder) for p in self._session_at
            )

    # ------------------------------------------------------------------------------------ sessions
    def _session_dir(self, session: str) -> Path:
        return self.sessions_dir / _hash_name(session)[:40]

    def _state_dir(self, state: SessionState) -> Path:
        if state.sdir is None:
            state.sdir = self._session_dir(state.session)
        return state.sdir

    def _data_path(self, state: SessionState) -> Path:
        return self._state_dir(state) / "data"

    def _journal(self, state: SessionState, line: str) -> None:
        """Append to the session's received-slices journal (call with ``state.lock`` held, session alive).

        No fsync: the journal survives a killed process, not a power cut. The journal is opened for each
        append and closed again, so an idle session holds no descriptor (a held one per session ran the
        process out of descriptors after ``ulimit -n`` abandoned uploads)."""
        try:
            fd = os.open(self._state_dir(state) / "received", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except FileNotFoundError:
            raise SessionGone(state.session) from None
        try:
            os.write(fd, line.encode("ascii"))
        finally:
            os.close(fd)

    @staticmethod
    def _replay_journal(state: SessionState, journal: Path) -> None:
        try:
            text = journal.read_text("ascii", errors="replace")
        except FileNotFoundError:
            return
        for line in text.split("\n"):  # a torn last line (crash mid-append) is ignored
            with contextlib.suppress(ValueError, IndexError):
                if line.startswith("+"):
                    offset, length = (int(x) for x in line[1:].split(" "))
                    if state.valid_offset(offset) and length == state.slice_length(offset):
                        state.received[offset] = length
                elif line.startswith("-"):
                    state.received.pop(int(line[1:]), None)

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
            try:
                sdir.mkdir(parents=True, exist_ok=True)
                fd = os.open(sdir / "data", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    with contextlib.suppress(OSError):  # sparse; a size beyond the filesystem's limit is no error
                        os.ftruncate(fd, state.filesize)
                finally:
                    os.close(fd)
                write_json_atomic(sdir / "session.json", state.to_json())
            except BaseException:
                shutil.rmtree(sdir, ignore_errors=True)  # e.g. a full disk: no half-made session stays
                raise
            state.touched = self.clock()
            self._sessions[state.session] = state
            self._session_at[state.path] = state.session
        return state

    def expire_sessions(self) -> int:
        """Discard the sessions idle for longer than the session TTL (their data is removed); at most one
        sweep per :data:`SWEEP_INTERVAL` of the clock. Returns how many were discarded."""
        now = self.clock()
        ttl = self._session_ttl()
        with self.lock:
            if now < self._next_sweep:
                return 0
            self._next_sweep = now + min(SWEEP_INTERVAL, ttl)
            expired = [
                st
                for st in self._sessions.values()
                if st.touched + ttl <= now
                and not st.finishing
                and not any(lk.locked() for lk in list(st.slice_locks.values()))
            ]
            for state in expired:
                self.discard_session(state.session)
        return len(expired)

    def discard_session(self, session: str) -> None:
        with self.lock:
            state = self._sessions.pop(session, None)
            if state is None:
                return
            with state.lock:
                state.alive = False
            if self._session_at.get(state.path) == session:
                del self._session_at[state.path]
            sdir = self._session_dir(session)
            # Rename first so that nothing can reopen it by name; writers with open descriptors write
            # into the orphan and their commit fails.
            graveyard = self.tmp_dir / f"gone-{uuid.uuid4().hex}"
            try:
                os.replace(sdir, graveyard)
            except OSError:
                graveyard = sdir
        shutil.rmtree(graveyard, ignore_errors=True)

    def begin_slice(self, state: SessionState, offset: int, *, wait: bool = True) -> SliceWriter:
        """Start writing the slice at ``offset`` (valid offset required): un-receives it first.

        Raises :class:`SessionGone` (discarded) or :class:`SessionBusy` (being completed; or, with
        ``wait=False``, another writer holds the slice).
        """
        with state.lock:
            slock = state.slice_locks.setdefault(offset, threading.Lock())
        if not slock.acquire(timeout=SLICE_LOCK_TIMEOUT if wait else 0):
            raise SessionBusy(state.session)
        fd: int | None = None
        try:
            with state.lock:
                if not state.alive:
                    raise SessionGone(state.session)
                if state.finishing:
                    raise SessionBusy(state.session)
                state.generation[offset] = state.generation.get(offset, 0) + 1
                state.touched = self.clock()
                if offset < state.hash_pos:
                    state._reset_hash()
                if state.received.pop(offset, None) is not None:
                    self._journal(state, f"-{offset}\n")
            try:
                fd = os.open(self._data_path(state), os.O_WRONLY)
            except FileNotFoundError:
                raise SessionGone(state.session) from None
            return SliceWriter(self, state, offset, fd, slock)
        except BaseException:
            if fd is not None:
                os.close(fd)
            slock.release()
            raise

    def add_slice_from_file(self, state: SessionState, offset: int, source: Path) -> bool:
        """Copy a spooled slice into the session (the slow path); waits for a running completion."""
        with state.finish_lock:
            writer = self.begin_slice(state, offset)
        try:
            with open(source, "rb") as fh:
                for chunk in iter(lambda: fh.read(CHUNK), b""):
                    writer.write(chunk)
            return writer.commit()
        finally:
            writer.abort()

    # ------------------------------------------------------------------------------------ hashing
    def advance_hash(self, state: SessionState, *, wait: bool) -> None:
        """Extend the running SHA-1 over the received prefix (see the module docstring)."""
        if not state.hash_lock.acquire(blocking=wait):
            return
        try:
            self._advance_hash_locked(state)
        finally:
            state.hash_lock.release()

    def _advance_hash_locked(self, state: SessionState) -> None:
        checkpoints = state.checkpoints()
        wanted = set(checkpoints)
        fd: int | None = None
        buf: bytearray | None = None
        try:
            while True:
                with state.lock:
                    if not state.alive:
                        return
                    offset = state.hash_pos
                    if offset >= state.filesize:
                        return
                    length = state.received.get(offset)
                    if length is None or length != state.slice_length(offset):
                        return
                    gen = state.generation.get(offset, 0)
                    sha = state.hash_state
                if fd is None:
                    try:
                        fd = os.open(self._data_path(state), os.O_RDONLY)
                    except FileNotFoundError:
                        return
                    buf = bytearray(min(CHUNK, max(length, 64)))
                assert buf is not None
                new_states: dict[int, str] = {}
                pos, end = offset, offset + length
                view = memoryview(buf)
                while pos < end:
                    n = os.preadv(fd, [view[: min(len(buf), end - pos)]], pos)
                    if n <= 0:
                        break
                    for piece in _split_at(view[:n], pos, checkpoints):
                        sha.update(piece)
                        if sha.length in wanted:
                            new_states[sha.length] = sha.state_hex()
                    pos += n
                with state.lock:
                    if sha is not state.hash_state:
                        continue  # reset meanwhile: start over from the new state
                    if pos != end or state.generation.get(offset, 0) != gen or not state.alive:
                        state._reset_hash()  # the slice changed under us: the running state is spoilt
                        continue
                    state.hash_pos = end
                    state.part_states.update(new_states)
        finally:
            if fd is not None:
                os.close(fd)

    def digest(self, state: SessionState) -> Digest:
        """The SHA-1 of a complete session (call with ``finish_lock`` held and ``finishing`` set)."""
        with state.hash_lock:
            self._advance_hash_locked(state)
            with state.lock:
                if not state.alive:
                    raise SessionGone(state.session)
                if state.hash_pos != state.filesize:  # cannot happen while finishing; stay correct anyway
                    state._reset_hash()
            if state.hash_pos != state.filesize:
                self._advance_hash_locked(state)
            with state.lock:
                if state.hash_pos != state.filesize:
                    raise SessionGone(state.session)
                return Digest(state.hash_state.hexdigest(), dict(state.part_states))

    def commit_session(self, state: SessionState, *, sha: str) -> ObjectMeta:
        """Make a verified, complete session the object at its path: its data file is renamed into blobs/.

        Call with :attr:`lock` and the session's ``finish_lock`` held.
        """
        with self.lock:
            if not state.alive:
                raise SessionGone(state.session)
            blob = uuid.uuid4().hex
            os.replace(self._data_path(state), self.blobs_dir / blob)
            now = int(time.time())
            old = self._objects.get(state.path)
            ctime = old.ctime if old is not None and old.kind == "file" else now
            meta = ObjectMeta(
                path=state.path,
                kind="file",
                ctime=ctime,
                mtime=now,
                biz_attr=state.biz_attr,
                filesize=state.filesize,
                sha=sha,
                blob=blob,
                session=state.session,
            )
            self._write_meta(meta)
            if old is not None:
                self._index_remove(old)
            self._objects[state.path] = meta
            self._index_add(meta)
            self.discard_session(state.session)
        if old is not None and old.blob:
            (self.blobs_dir / old.blob).unlink(missing_ok=True)
        return meta

    def close(self) -> None:
        """Nothing to release: idle sessions hold no descriptor (the state on disk is kept)."""

    def sessions(self) -> Iterator[SessionState]:
        with self.lock:
            yield from list(self._sessions.values())


def _split_at(view: memoryview, pos: int, cuts: list[int]) -> Iterator[memoryview]:
    """Split ``view`` (which starts at file offset ``pos``) at every offset in the sorted ``cuts``."""
    end = pos + len(view)
    start = 0
    i = bisect.bisect_right(cuts, pos)
    while i < len(cuts) and cuts[i] < end:
        yield view[start : cuts[i] - pos]
        start = cuts[i] - pos
        i += 1
    yield view[start:]
