"""The COS operations of both generations (COS_JSON_API.md §3-§5, §7), as a mixin of :class:`CosApp`.

Each ``op_*`` takes a routed, parsed and authenticated :class:`Ctx` and returns a :class:`Reply` or raises
:class:`ApiError`. Check-then-act sequences on metadata hold the bucket's lock; assembling a completed
session happens under that session's ``finish_lock`` only, so other paths are never blocked by it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_cos.emulator.config import BucketConfig, EmulatorSettings
from airflow_provider_cos.emulator.faults import StatsCounter
from airflow_provider_cos.emulator.httpio import Spooled
from airflow_provider_cos.emulator.replies import ApiError, Reply, ok
from airflow_provider_cos.emulator.storage import (
    BucketStore,
    ObjectMeta,
    SessionBusy,
    SessionGone,
    SessionState,
    SliceWriter,
    parent_of,
)
from airflow_provider_cos.protocol.errors import CosPathError
from airflow_provider_cos.protocol.paths import normalize_file_path, normalize_folder_path, object_urls
from airflow_provider_cos.protocol.signing import SignatureFields

_SHA_RE = re.compile(r"^[0-9a-fA-F]{40}$")
MAX_FILESIZE = 1 << 44  # 16 TiB
LIST_DEFAULT = 199
LIST_MAX = 1000


@dataclass
class Ctx:
    """A routed, parsed, authenticated request."""

    api_version: str
    bucket: BucketConfig
    store: BucketStore
    raw_path: str
    path: str
    op: str
    fields: dict[str, str]
    upload: Spooled | None
    signature: SignatureFields | None


def _int_field(
    fields: Mapping[str, str], name: str, *, required: bool = True, default: int | None = None
) -> int | None:
    value = fields.get(name)
    if value is None or value.strip() == "":
        if required:
            raise ApiError(-61, f"missing field {name}")
        return default
    text = value.strip()
    if not re.fullmatch(r"-?\d{1,20}", text):
        raise ApiError(-61, f"field {name} is not an integer")
    return int(text)


class CosOperations:
    """Operation handlers; the host class provides ``settings``, ``stats`` and ``_base_url``."""

    settings: EmulatorSettings
    stats: StatsCounter
    _base_url: Callable[[], str]

    def _file_path(self, ctx: Ctx) -> str:
        return self._file_path_of(ctx.path)

    @staticmethod
    def _file_path_of(path: str) -> str:
        try:
            return normalize_file_path(path)
        except CosPathError as exc:
            raise ApiError(-180, exc.message) from None

    def _folder_path(self, path: str) -> str:
        try:
            return normalize_folder_path(path)
        except CosPathError as exc:
            raise ApiError(-180, exc.message) from None

    def urls(self, ctx: Ctx, path: str) -> dict[str, Any]:
        urls = object_urls(
            ctx.bucket.appid,
            ctx.bucket.bucket,
            path,
            api_version=ctx.api_version,  # type: ignore[arg-type]
            region=self.settings.region,
            api_endpoint=self._base_url(),
        )
        return {
            "access_url": urls.access_url,
            "resource_path": urls.resource_path,
            "source_url": urls.source_url,
            "url": urls.url,
            "preview_url": urls.access_url,
        }

    def _file_info(self, ctx: Ctx, meta: ObjectMeta) -> dict[str, Any]:
        return {
            "name": meta.name,
            "filesize": meta.filesize,
            "filelen": meta.filesize,
            "sha": ctx.store.sha_of(meta),
            "ctime": str(meta.ctime),
            "mtime": str(meta.mtime),
            "biz_attr": meta.biz_attr,
            **self.urls(ctx, meta.path),
        }

    def _session_info(self, ctx: Ctx, state: SessionState) -> dict[str, Any]:
        # Unfinished: filelen < filesize always (COS_JSON_API.md §5), even once every slice has arrived
        # (at most filesize - 1; -1 for an empty file), so a completion check never fires before finish.
        filelen = min(state.bytes_received, state.filesize - 1) if state.filesize else -1
        return {
            "name": state.path.rsplit("/", 1)[-1],
            "filesize": state.filesize,
            "filelen": filelen,
            "sha": state.sha,
            "ctime": str(state.ctime),
            "mtime": str(state.ctime),
            "biz_attr": state.biz_attr,
            **self.urls(ctx, state.path),
        }

    @staticmethod
    def _folder_info(meta: ObjectMeta | None, name: str) -> dict[str, Any]:
        if meta is None:
            return {"name": name, "biz_attr": "", "ctime": "0", "mtime": "0"}
        return {"name": meta.name, "biz_attr": meta.biz_attr, "ctime": str(meta.ctime), "mtime": str(meta.mtime)}

    def _check_parent(self, store: BucketStore, path: str) -> None:
        parent = parent_of(path)
        if not store.folder_exists(parent):
            raise ApiError(-166, f"folder {parent} does not exist")
        if store.get(path + "/") is not None:
            raise ApiError(-178, f"a folder {path}/ exists")

    @staticmethod
    def _sha_field(fields: Mapping[str, str]) -> str:
        sha = fields.get("sha", "").strip()
        if sha and not _SHA_RE.match(sha):
            raise ApiError(-168, "sha must be 40 hex characters")
        return sha.lower()

    @staticmethod
    def _insert_only(fields: Mapping[str, str]) -> bool:
        return fields.get("insertonly", "0").strip() not in ("", "0", "false", "False")

    def _filesize(self, fields: Mapping[str, str]) -> int:
        size = _int_field(fields, "filesize")
        assert size is not None
        if not 0 <= size <= MAX_FILESIZE:
            raise ApiError(-61, "filesize out of range")
        return size

    def _instant_or_conflict(
        self, ctx: Ctx, path: str, filesize: int, sha: str, insert_only: bool, biz_attr: str
    ) -> dict[str, Any] | None:
        """秒传: URLs if the content is already at ``path`` or elsewhere in the bucket; -177 on conflict."""
        store = ctx.store
        with store.lock:
            existing = store.get(path)
            if existing is not None and existing.kind == "file":
                if sha and existing.filesize == filesize and store.sha_of(existing) == sha:
                    return self.urls(ctx, path)
                if insert_only:
                    raise ApiError(-177, "file exists and insertOnly=1")
            if sha:
                source = store.find_by_sha(sha, filesize)
                if source is not None:
                    store.commit_file(
                        path, store.blob_path(source), size=filesize, sha=sha, biz_attr=biz_attr, link=True
                    )
                    self.stats.completed()
                    return self.urls(ctx, path)
        return None

    # ------------------------------------------------------------------------------------ simple ops
    def op_upload(self, ctx: Ctx) -> Reply:
        path = self._file_path(ctx)
        if ctx.upload is None or ctx.upload.path is None:
            raise ApiError(-61, "missing filecontent")
        sha = self._sha_field(ctx.fields)
        actual = ctx.upload.sha1
        if actual is None:  # op was not known when the part started; hash now
            digest = hashlib.sha1()
            with open(ctx.upload.path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
            actual = digest.hexdigest()
        if sha and sha != actual:
            raise ApiError(-174, "sha does not match the uploaded content")
        insert_only = self._insert_only(ctx.fields)
        store = ctx.store
        with store.lock:
            self._check_parent(store, path)
            existing = store.get(path)
            if existing is not None and existing.kind == "file" and insert_only:
                if store.sha_of(existing) == actual:
                    return ok(self.urls(ctx, path))
                raise ApiError(-177, "file exists and insertOnly=1")
            state = store.session_at(path)
            if state is not None:
                store.discard_session(state.session)
            store.commit_file(
                path, ctx.upload.path, size=ctx.upload.length, sha=actual, biz_attr=ctx.fields.get("biz_attr", "")
            )
        self.stats.completed()
        return ok(self.urls(ctx, path))

    def op_stat(self, ctx: Ctx) -> Reply:
        store = ctx.store
        if ctx.path.endswith("/"):
            folder = self._folder_path(ctx.path)
            if folder == "/":
                return ok(self._folder_info(None, ""))
            meta = store.get(folder)
            if meta is None or meta.kind != "folder":
                raise ApiError(-166, "folder does not exist")
            return ok(self._folder_info(meta, meta.name))
        path = self._file_path(ctx)
        meta = store.get(path)
        if meta is not None and meta.kind == "file":
            return ok(self._file_info(ctx, meta))  # a complete object stays the object until finish replaces it
        state = store.session_at(path)
        if state is not None:
            return ok(self._session_info(ctx, state))
        raise ApiError(-166, "file does not exist")

    def op_list(self, ctx: Ctx) -> Reply:
        idx = ctx.path.rfind("/")
        folder = self._folder_path(ctx.path[: idx + 1])
        prefix = ctx.path[idx + 1 :]
        store = ctx.store
        if not store.folder_exists(folder):
            raise ApiError(-166, "folder does not exist")
        num = _int_field(ctx.fields, "num", required=False, default=LIST_DEFAULT)
        assert num is not None
        if not 1 <= num <= LIST_MAX:
            raise ApiError(-170, f"num must be within 1..{LIST_MAX}")
        after = ""
        context = ctx.fields.get("context", "")
        if context:
            try:
                after = base64.b64decode(context.encode("ascii"), altchars=b"-_", validate=True).decode("utf-8")
            except (binascii.Error, ValueError, UnicodeDecodeError):
                raise ApiError(-61, "invalid context") from None
        entries = []
        for item in store.children(folder):
            name = item.path.rstrip("/").rsplit("/", 1)[-1]
            if not name.startswith(prefix) or (after and name <= after):
                continue
            entries.append((name, item))
        page, rest = entries[:num], entries[num:]
        infos: list[dict[str, Any]] = []
        dircount = filecount = 0
        for name, item in page:
            if isinstance(item, SessionState):
                info = self._session_info(ctx, item)
                info.pop("biz_attr", None)
                filecount += 1
            elif item.kind == "folder":
                info = self._folder_info(item, name)
                info.pop("biz_attr", None)
                dircount += 1
            else:
                info = self._file_info(ctx, item)
                info.pop("biz_attr", None)
                filecount += 1
            infos.append(info)
        next_context = base64.urlsafe_b64encode(page[-1][0].encode("utf-8")).decode("ascii") if rest else ""
        data: dict[str, Any] = {"context": next_context, "listover": not rest, "infos": infos}
        if ctx.api_version == "v1":
            data.update({"filecount": filecount, "dircount": dircount})
        return ok(data)

    def op_delete(self, ctx: Ctx) -> Reply:
        store = ctx.store
        if ctx.path.endswith("/"):
            folder = self._folder_path(ctx.path)
            if folder == "/":
                raise ApiError(-180, "the bucket root cannot be deleted")
            with store.lock:
                meta = store.get(folder)
                if meta is None or meta.kind != "folder":
                    raise ApiError(-166, "folder does not exist")
                if store.has_descendants(folder):
                    raise ApiError(-173, "folder is not empty")
                store.delete(folder)
            return ok()
        path = self._file_path(ctx)
        with store.lock:
            state = store.session_at(path)
            meta = store.get(path)
            if state is None and (meta is None or meta.kind != "file"):
                raise ApiError(-166, "file does not exist")
            if state is not None:
                store.discard_session(state.session)
            if meta is not None and meta.kind == "file":
                store.delete(path)
        return ok()

    def op_create(self, ctx: Ctx) -> Reply:
        if not ctx.path.endswith("/"):
            raise ApiError(-180, "a folder path must end with '/'")
        folder = self._folder_path(ctx.path)
        if folder == "/":
            raise ApiError(-180, "the bucket root always exists")
        store = ctx.store
        with store.lock:
            if not store.folder_exists(parent_of(folder)):
                raise ApiError(-166, f"folder {parent_of(folder)} does not exist")
            if (
                store.get(folder) is not None
                or store.get(folder.rstrip("/")) is not None
                or store.session_at(folder.rstrip("/")) is not None
            ):
                raise ApiError(-178, "path exists")
            meta = store.put_folder(folder, ctx.fields.get("biz_attr", ""))
        return ok({"ctime": str(meta.ctime)})

    def op_update(self, ctx: Ctx) -> Reply:
        store = ctx.store
        path = self._folder_path(ctx.path) if ctx.path.endswith("/") else self._file_path(ctx)
        with store.lock:
            meta = store.get(path)
            if meta is None:
                raise ApiError(-166, "does not exist")
            if "biz_attr" in ctx.fields:
                store.set_biz_attr(meta, ctx.fields["biz_attr"])
        return ok()

    # ------------------------------------------------------------------------------------ slices (shared)
    def _new_session(
        self, ctx: Ctx, path: str, filesize: int, sha: str, insert_only: bool, parts: list[dict[str, Any]] | None
    ) -> SessionState:
        requested = _int_field(ctx.fields, "slice_size", required=False)
        if requested is not None and requested <= 0:
            raise ApiError(-61, "slice_size must be positive")
        slice_size = self.settings.answer_slice_size(requested, api_version=ctx.api_version)
        sid = f"{uuid.uuid4()}+{base64.b64encode(uuid.uuid4().bytes[:7]).decode('ascii')}"
        state = SessionState(
            session=sid,
            path=path,
            api_version=ctx.api_version,
            filesize=filesize,
            slice_size=slice_size,
            sha=sha,
            uploadparts=parts,
            biz_attr=ctx.fields.get("biz_attr", ""),
            insert_only=insert_only,
            ctime=int(time.time()),
        )
        return ctx.store.open_session(state)

    def _session_for(self, ctx: Ctx, path: str) -> tuple[SessionState | None, ObjectMeta | None]:
        """The open session named by the request, or the object it already completed (for retries)."""
        sid = ctx.fields.get("session", "").strip()
        if not sid:
            raise ApiError(-61, "missing session")
        state = ctx.store.session(sid)
        if state is not None and state.path == path and state.api_version == ctx.api_version:
            return state, None
        meta = ctx.store.get(path)
        if meta is not None and meta.kind == "file" and meta.session == sid:
            return None, meta
        raise ApiError(-4020, "slice session unknown for this path")

    def _store_slice(self, ctx: Ctx, state: SessionState) -> tuple[int, int]:
        """Validate and store the request's slice. Raises :class:`SessionGone` if the session went away."""
        offset = _int_field(ctx.fields, "offset")
        assert offset is not None
        if ctx.upload is None:
            raise ApiError(-61, "missing filecontent")
        length = ctx.upload.length
        if not state.valid_offset(offset):
            raise ApiError(-4021, f"offset {offset} is not a slice start (slice_size {state.slice_size})")
        if length != state.slice_length(offset):
            raise ApiError(-4021, f"slice at {offset} must be {state.slice_length(offset)} bytes, got {length}")
        sink = ctx.upload.sink
        if isinstance(sink, SliceWriter):  # already written into the data file while the body arrived
            if sink.state is not state or sink.offset != offset:
                raise SessionGone(state.session)
            if not sink.commit():
                raise ApiError(-4021, f"slice at {offset} was not received completely")
        else:
            assert ctx.upload.path is not None
            try:
                stored = ctx.store.add_slice_from_file(state, offset, ctx.upload.path)
            except SessionBusy:
                raise ApiError(-4020, "slice is busy (another request is writing it)") from None
            if not stored:
                raise ApiError(-4021, f"slice at {offset} was not received completely")
        return offset, length

    def _finalize(self, ctx: Ctx, state: SessionState, *, sha: str = "") -> dict[str, Any]:
        """Verify and commit a complete session (its data file becomes the blob); idempotent under concurrency."""
        store = ctx.store
        with state.finish_lock:
            if not state.alive:
                meta = store.get(state.path)
                if meta is not None and meta.session == state.session:
                    return self.urls(ctx, state.path)
                raise ApiError(-4020, "session was discarded")
            with state.lock:
                missing = state.missing()
                if missing:
                    raise ApiError(-4022, f"{len(missing)} slice(s) missing, first at {missing[0]}")
                state.finishing = True
            try:
                try:
                    digest = store.digest(state)
                except SessionGone:
                    raise ApiError(-4020, "session was discarded") from None
                for expected, what in ((state.sha, "init sha"), (sha, "sha")):
                    if expected and expected != digest.sha:
                        raise ApiError(-174, f"{what} does not match the uploaded content")
                parts = state.uploadparts if self.settings.check_uploadparts else None
                if parts:
                    for part in parts[:-1]:
                        end = part["offset"] + part["datalen"]
                        if digest.states.get(end) != part["datasha"]:
                            raise ApiError(-174, f"uploadparts datasha at offset {part['offset']} mismatch")
                    if parts[-1]["datasha"] != digest.sha:
                        raise ApiError(-174, "last uploadparts datasha is not the file SHA-1")
                with store.lock:
                    self._check_parent(store, state.path)
                    existing = store.get(state.path)
                    if (
                        existing is not None
                        and existing.kind == "file"
                        and state.insert_only
                        and store.sha_of(existing) != digest.sha
                    ):
                        raise ApiError(-177, "file exists and insertOnly=1")
                    try:
                        store.commit_session(state, sha=digest.sha)
                    except SessionGone:
                        raise ApiError(-4020, "session was discarded") from None
            finally:
                with state.lock:
                    state.finishing = False
        self.stats.completed()
        return self.urls(ctx, state.path)

    @staticmethod
    def _parse_uploadparts(text: str, filesize: int) -> list[dict[str, Any]] | None:
        if not text.strip():
            return None
        try:
            raw = json.loads(text)
        except ValueError:
            raise ApiError(-61, "uploadparts is not JSON") from None
        if not isinstance(raw, list) or not raw:
            raise ApiError(-61, "uploadparts must be a non-empty array")
        parts: list[dict[str, Any]] = []
        pos = 0
        for item in raw:
            if not isinstance(item, dict):
                raise ApiError(-61, "uploadparts entries must be objects")
            try:
                offset, datalen, datasha = int(item["offset"]), int(item["datalen"]), str(item["datasha"]).lower()
            except (KeyError, TypeError, ValueError):
                raise ApiError(-61, "uploadparts entry needs offset, datalen, datasha") from None
            if offset != pos or datalen < 0 or not _SHA_RE.match(datasha):
                raise ApiError(-61, "uploadparts entries must be contiguous from 0 with 40-hex datasha")
            pos += datalen
            parts.append({"offset": offset, "datalen": datalen, "datasha": datasha})
        if pos != filesize:
            raise ApiError(-61, "uploadparts do not add up to filesize")
        if any((p["offset"] + p["datalen"]) % 64 for p in parts[:-1]):
            raise ApiError(-61, "uploadparts boundaries must be multiples of 64")
        return parts

    def _init_answer(self, state: SessionState) -> dict[str, Any]:
        return {
            "session": state.session,
            "offset": state.first_missing() if state.api_version == "v1" else 0,
            "slice_size": state.slice_size,
            "serial_upload": 1 if self.settings.serial_upload else 0,
        }

    # ------------------------------------------------------------------------------------ v1
    def op_v1_upload_slice(self, ctx: Ctx) -> Reply:
        path = self._file_path(ctx)
        if ctx.upload is not None:
            return self._v1_data(ctx, path)
        return self._v1_init(ctx, path)

    def _v1_init(self, ctx: Ctx, path: str) -> Reply:
        filesize = self._filesize(ctx.fields)
        sha = self._sha_field(ctx.fields)
        insert_only = self._insert_only(ctx.fields)
        store = ctx.store
        with store.lock:
            self._check_parent(store, path)
        if ctx.fields.get("session", "").strip():
            try:
                state, done = self._session_for(ctx, path)
            except ApiError:
                state, done = None, None
            if done is not None:
                return ok(self.urls(ctx, path))
            if state is not None:
                if state.filesize != filesize or (sha and state.sha and sha != state.sha):
                    raise ApiError(-175, "resume with a different filesize or sha")
                if state.complete:
                    return ok(self._finalize(ctx, state))
                return ok(self._init_answer(state))
        with store.lock:
            state = store.session_at(path)
            if (
                state is not None
                and sha
                and state.sha == sha
                and state.filesize == filesize
                and state.api_version == "v1"
                and not state.complete
            ):
                return ok(self._init_answer(state))
            instant = self._instant_or_conflict(ctx, path, filesize, sha, insert_only, ctx.fields.get("biz_attr", ""))
            if instant is not None:
                if state is not None:
                    store.discard_session(state.session)
                return ok(instant)
            state = self._new_session(ctx, path, filesize, sha, insert_only, None)
        return ok(self._init_answer(state))

    def _v1_data(self, ctx: Ctx, path: str) -> Reply:
        state, done = self._session_for(ctx, path)
        if done is not None:
            return ok({"session": done.session, "offset": _int_field(ctx.fields, "offset"), **self.urls(ctx, path)})
        assert state is not None
        try:
            offset, _ = self._store_slice(ctx, state)
        except SessionGone:
            return self._v1_data_done(ctx, path)
        data: dict[str, Any] = {"session": state.session, "offset": offset}
        if state.complete:
            data.update(self._finalize(ctx, state))
        return ok(data)

    def _v1_data_done(self, ctx: Ctx, path: str) -> Reply:
        """The session went away while the slice arrived: success if it completed the file, else -4020."""
        _state, done = self._session_for(ctx, path)
        if done is None:
            raise ApiError(-4020, "session was discarded")
        return ok({"session": done.session, "offset": _int_field(ctx.fields, "offset"), **self.urls(ctx, path)})

    # ------------------------------------------------------------------------------------ v2
    def op_v2_init(self, ctx: Ctx) -> Reply:
        path = self._file_path(ctx)
        filesize = self._filesize(ctx.fields)
        sha = self._sha_field(ctx.fields)
        parts = self._parse_uploadparts(ctx.fields.get("uploadparts", ""), filesize)
        if parts and sha and parts[-1]["datasha"] != sha:
            raise ApiError(-174, "last uploadparts datasha differs from sha")
        insert_only = self._insert_only(ctx.fields)
        store = ctx.store
        with store.lock:
            self._check_parent(store, path)
            if store.session_at(path) is not None:
                raise ApiError(-4019, "an unfinished slice upload exists at this path")
            instant = self._instant_or_conflict(ctx, path, filesize, sha, insert_only, ctx.fields.get("biz_attr", ""))
            if instant is not None:
                return ok(instant)
            state = self._new_session(ctx, path, filesize, sha, insert_only, parts)
        return ok(self._init_answer(state))

    def op_v2_data(self, ctx: Ctx) -> Reply:
        path = self._file_path(ctx)
        state, done = self._session_for(ctx, path)
        if done is not None:
            offset = _int_field(ctx.fields, "offset")
            return ok({"session": done.session, "offset": offset})
        assert state is not None
        try:
            offset, length = self._store_slice(ctx, state)
        except SessionGone:
            state, done = self._session_for(ctx, path)
            if done is None:
                raise ApiError(-4020, "session was discarded") from None
            return ok({"session": done.session, "offset": _int_field(ctx.fields, "offset")})
        data: dict[str, Any] = {"session": state.session, "offset": offset, "datalen": length}
        if ctx.upload is not None and ctx.upload.md5:
            data["datamd5"] = ctx.upload.md5
        return ok(data)

    def op_v2_finish(self, ctx: Ctx) -> Reply:
        path = self._file_path(ctx)
        state, done = self._session_for(ctx, path)
        filesize = self._filesize(ctx.fields)
        sha = self._sha_field(ctx.fields)
        if done is not None:
            if done.filesize != filesize or (sha and sha != done.sha):
                raise ApiError(-175, "finish does not match the completed object")
            return ok(self.urls(ctx, path))
        assert state is not None
        if filesize != state.filesize:
            raise ApiError(-175, f"filesize {filesize} differs from init's {state.filesize}")
        return ok(self._finalize(ctx, state, sha=sha))

    def op_v2_list(self, ctx: Ctx) -> Reply:
        path = self._file_path(ctx)
        state = ctx.store.session_at(path)
        if state is not None:
            parts = [{"offset": o, "datalen": n} for o, n in sorted(state.received.items())]
            return ok(
                {
                    "session": state.session,
                    "filesize": state.filesize,
                    "slice_size": state.slice_size,
                    "sha": state.sha,
                    "serial_upload": 1 if self.settings.serial_upload else 0,
                    "listparts": parts,
                }
            )
        meta = ctx.store.get(path)
        if meta is not None and meta.kind == "file":
            return ok(self.urls(ctx, path))
        raise ApiError(-166, "no unfinished upload and no file at this path", status=404)
