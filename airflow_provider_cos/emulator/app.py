"""The COS JSON API behaviour (COS_JSON_API.md §7): routing, auth, faults and every operation.

:class:`CosApp` is transport-independent: the HTTP layer hands it an :class:`Exchange` (method, target,
headers, a body reader) and sends back the :class:`Reply`. Every failure is an envelope
``{"code","message","data"}`` with the HTTP status from the protocol's ``ERROR_TABLE``; only a bug gives
a 500 (and is logged). Both ``/files/v1`` and ``/files/v2`` are served.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from airflow_provider_cos.emulator.config import BucketConfig, EmulatorSettings
from airflow_provider_cos.emulator.faults import FaultBook, FaultRule, StatsCounter
from airflow_provider_cos.emulator.httpio import BadRequest, BodyReader, RequestBody, Spooled, read_body
from airflow_provider_cos.emulator.storage import (
    BucketStore,
    ObjectMeta,
    SessionGone,
    SessionState,
    parent_of,
)
from airflow_provider_cos.protocol.errors import CosAuthError, CosPathError, spec_for_code
from airflow_provider_cos.protocol.paths import (
    decode_path,
    normalize_file_path,
    normalize_folder_path,
    object_urls,
)
from airflow_provider_cos.protocol.signing import SignatureFields, verify

log = logging.getLogger("airflow_provider_cos.emulator")

_ROUTE = re.compile(r"^/files/(v1|v2)/([^/?]+)/([^/?]+)(/[^?]*)?$")
_SHA_RE = re.compile(r"^[0-9a-fA-F]{40}$")
MAX_FILESIZE = 1 << 44  # 16 TiB
LIST_DEFAULT = 199
LIST_MAX = 1000
ONCE_OPS = frozenset({"delete", "update", "move", "copy"})


class ApiError(Exception):
    """An error answer: COS ``code`` (from the table) and an optional HTTP status override."""

    def __init__(self, code: int, detail: str = "", *, status: int | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status


class DropConnection(Exception):
    """Close the socket without answering (fault injection)."""


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    close: bool = False

    def to_bytes(self, *, keep_alive: bool) -> bytes:
        reason = _REASONS.get(self.status, "Status")
        head = (
            f"HTTP/1.1 {self.status} {reason}\r\n"
            f"Server: cos-emulator\r\nDate: {formatdate(usegmt=True)}\r\n"
            f"Content-Type: {self.content_type}\r\nContent-Length: {len(self.body)}\r\n"
            f"Connection: {'keep-alive' if keep_alive and not self.close else 'close'}\r\n\r\n"
        )
        return head.encode("latin-1") + self.body


_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
            504: "Gateway Timeout", 429: "Too Many Requests"}


def envelope(code: int, message: str, data: Mapping[str, Any] | None = None, *, status: int = 200) -> Reply:
    body = json.dumps({"code": code, "message": message, "data": dict(data or {})}, ensure_ascii=False,
                      separators=(",", ":"))
    return Reply(status, body.encode("utf-8"))


def ok(data: Mapping[str, Any] | None = None) -> Reply:
    return envelope(0, "SUCCESS", data)


def error_reply(code: int, detail: str = "", *, status: int | None = None) -> Reply:
    try:
        spec = spec_for_code(code)
        name, http_status = spec.name, spec.http_status
    except KeyError:
        name, http_status = f"ERROR_{abs(code)}", 400
    return envelope(code, name, {"detail": detail} if detail else None, status=status or http_status)


@dataclass
class Exchange:
    """One HTTP request as the app sees it."""

    method: str
    target: str
    headers: Mapping[str, str]
    reader: BodyReader


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


def _int_field(fields: Mapping[str, str], name: str, *, required: bool = True, default: int | None = None
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


class CosApp:
    """The emulated service. Thread-safe: state lives in :class:`BucketStore` objects and locked counters."""

    def __init__(
        self,
        data_dir: Path,
        buckets: list[BucketConfig],
        settings: EmulatorSettings,
        faults: FaultBook,
        stats: StatsCounter,
        base_url: Callable[[], str],
    ) -> None:
        self.tmp_dir = data_dir / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        for leftover in self.tmp_dir.iterdir():  # spool files and discarded sessions of a previous run
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        self.settings = settings
        self.faults = faults
        self.stats = stats
        self._base_url = base_url
        self._buckets: dict[tuple[str, str], tuple[BucketConfig, BucketStore]] = {}
        for cfg in buckets:
            store = BucketStore(data_dir / "buckets" / f"{cfg.appid}-{cfg.bucket}", self.tmp_dir)
            self._buckets[(cfg.appid, cfg.bucket)] = (cfg, store)
        self._used_once: set[tuple[str, int, str, str]] = set()
        self._once_lock = threading.Lock()

    # ------------------------------------------------------------------------------------ entry
    def handle(self, ex: Exchange) -> Reply:
        target = ex.target
        if not target.startswith("/"):  # absolute-form request line (sent through an HTTP proxy)
            parts = urlsplit(target)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        raw_path, _, query = target.partition("?")
        if raw_path.startswith("/_emulator/"):
            return self._control(ex, raw_path, query)
        try:
            return self._handle_api(ex, raw_path, query)
        except ApiError as exc:
            return error_reply(exc.code, exc.detail, status=exc.status)
        except BadRequest as exc:
            reply = error_reply(exc.code, exc.detail)
            reply.close = exc.close
            return reply

    def _handle_api(self, ex: Exchange, raw_path: str, query: str) -> Reply:
        query_fields: dict[str, str] = {}
        sign_param: str | None = None
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key.lower() == "sign":
                sign_param = value
            else:
                query_fields.setdefault(key.lower(), value)
        match = _ROUTE.match(raw_path)
        if not match:
            raise ApiError(-180, "URL is not /files/v1|v2/<appid>/<bucket>/<path>", status=404)
        api_version, appid, bucket_name, raw_obj = match.groups()
        entry = self._buckets.get((appid, bucket_name))
        if entry is None:
            raise ApiError(-133, "no such appid/bucket")
        cfg, store = entry
        path = self._decode_path(raw_obj or "/")

        body = RequestBody({}, None)
        if ex.method == "POST":
            def on_file_start(fields: dict[str, str], consumed: int) -> None:
                self._maybe_drop(ex, path, fields, consumed, at_file=True)

            body = read_body(ex.reader, ex.headers.get("content-type", ""), self.tmp_dir, on_file_start)
        elif not ex.reader.exhausted:
            ex.reader.drain()
        try:
            fields = {**query_fields, **body.fields}
            op = fields.get("op", "").strip()
            if op:
                self.stats.request(op)
            if body.upload is not None and self._is_slice_data(op, fields):
                self.stats.slice_bytes(body.upload.length)
            fault_reply = self._apply_fault(ex, path, op, fields)
            if fault_reply is not None:
                return fault_reply
            signature = self._authenticate(ex, sign_param, cfg, store, api_version, path, op)
            if not op:
                raise ApiError(-60, "no op field")
            ctx = Ctx(api_version, cfg, store, raw_obj or "/", path, op, fields, body.upload, signature)
            return self._dispatch(ctx, ex.method)
        finally:
            if body.upload is not None:
                body.upload.discard()

    @staticmethod
    def _decode_path(raw: str) -> str:
        lowered = raw.lower()
        if "%2f" in lowered or "%5c" in lowered or "%00" in lowered:
            raise ApiError(-180, "encoded '/', '\\' or NUL in the path")
        try:
            path = decode_path(raw)
        except UnicodeDecodeError:
            raise ApiError(-180, "path is not valid UTF-8") from None
        if any(ord(c) < 0x20 or c == "\x7f" for c in path):
            raise ApiError(-180, "control character in the path")
        segments = path.strip("/").split("/")
        if any(s in (".", "..") for s in segments):
            raise ApiError(-180, "'.' or '..' segment in the path")
        return path

    @staticmethod
    def _is_slice_data(op: str, fields: Mapping[str, str]) -> bool:
        return op == "upload_slice_data" or (op == "upload_slice" and "session" in fields)

    @staticmethod
    def _op_names(op: str, fields: Mapping[str, str], has_file: bool) -> tuple[str, ...]:
        if op == "upload_slice":
            alias = "upload_slice_data" if has_file or "offset" in fields else "upload_slice_init"
            return (op, alias)
        return (op,)

    # ------------------------------------------------------------------------------------ faults
    def _maybe_drop(self, ex: Exchange, path: str, fields: dict[str, str], consumed: int, *, at_file: bool) -> None:
        op = fields.get("op", "")
        rule = self.faults.take(self._op_names(op, fields, at_file), path, drop_only=True)
        if rule is None:
            return
        self.stats.fault()
        if rule.delay:
            time.sleep(rule.delay)
        if rule.after_bytes is not None:
            while ex.reader.consumed < rule.after_bytes and not ex.reader.exhausted:
                if not ex.reader.read(min(256 * 1024, rule.after_bytes - ex.reader.consumed)):
                    break
        raise DropConnection()

    def _apply_fault(self, ex: Exchange, path: str, op: str, fields: dict[str, str]) -> Reply | None:
        rule = self.faults.take(self._op_names(op, fields, "session" in fields), path)
        if rule is None:
            return None
        self.stats.fault()
        if rule.delay:
            time.sleep(rule.delay)
        return self._fault_reply(rule)

    @staticmethod
    def _fault_reply(rule: FaultRule) -> Reply | None:
        if rule.drop:
            raise DropConnection()
        if rule.garbage:
            return Reply(200, b"<html><body>502 proxy garbage, not JSON</body></html>", "text/html")
        if rule.empty:
            return Reply(200, b"")
        if rule.status is not None:
            if rule.plain:
                return Reply(rule.status, f"injected HTTP {rule.status}\n".encode(), "text/plain")
            return error_reply(rule.code if rule.code is not None else -181, "injected fault", status=rule.status)
        if rule.code is not None:
            return error_reply(rule.code, "injected fault")
        return None  # pure delay

    # ------------------------------------------------------------------------------------ auth
    def _authenticate(self, ex: Exchange, sign_param: str | None, cfg: BucketConfig, store: BucketStore,
                      api_version: str, path: str, op: str) -> SignatureFields:
        header = ex.headers.get("authorization")
        signature = header if header else sign_param
        if signature and sign_param is not None and not header and " " in signature:
            # base64 never contains a space: a '+' was sent un-encoded in the query string
            raise ApiError(-70, "sign parameter is not URL-encoded ('+' arrived as a space)")
        try:
            fields = verify(signature or "", lambda sid: cfg.secret_key if sid == cfg.secret_id else None,
                            appid=cfg.appid, bucket=cfg.bucket, now=int(time.time()))
        except CosAuthError as exc:
            raise ApiError(exc.code if exc.code is not None else -95, exc.message) from None
        resource = f"/{cfg.appid}/{cfg.bucket}{path}"
        try:
            f_decoded = decode_path(fields.fileid) if fields.fileid else ""
        except UnicodeDecodeError:
            raise ApiError(-91, "f is not valid percent-encoded UTF-8") from None
        if fields.one_time:
            if op and op not in ONCE_OPS:
                raise ApiError(-91, f"a one-time signature cannot be used for op={op}")
            if f_decoded != resource:
                raise ApiError(-95, "one-time signature is bound to another resource")
            key = (fields.secret_id, fields.now, fields.rand, f_decoded)
            with self._once_lock:
                if key in self._used_once:
                    raise ApiError(-99, "one-time signature already used")
                self._used_once.add(key)
        else:
            if f_decoded and f_decoded != resource and not resource.startswith(f_decoded.rstrip("/") + "/"):
                raise ApiError(-95, "multi-effect signature f is neither the resource nor a folder prefix")
            if op in ("delete", "update") and self.settings.delete_requires_once:
                raise ApiError(-98, f"op={op} needs a one-time signature")
        return fields

    # ------------------------------------------------------------------------------------ dispatch
    def _dispatch(self, ctx: Ctx, method: str) -> Reply:
        op = ctx.op
        get_ops = {"stat": self.op_stat, "list": self.op_list}
        post_ops = {
            "upload": self.op_upload,
            "delete": self.op_delete,
            "create": self.op_create,
            "update": self.op_update,
        }
        if ctx.api_version == "v1":
            post_ops["upload_slice"] = self.op_v1_upload_slice
        else:
            post_ops.update({
                "upload_slice_init": self.op_v2_init,
                "upload_slice_data": self.op_v2_data,
                "upload_slice_finish": self.op_v2_finish,
                "upload_slice_list": self.op_v2_list,
            })
        handler = get_ops.get(op) or post_ops.get(op)
        if handler is None:
            raise ApiError(-61, f"unsupported op {op!r} on /files/{ctx.api_version}")
        if op in post_ops and method != "POST":
            raise ApiError(-61, f"op={op} needs POST", status=405)
        return handler(ctx)

    # ------------------------------------------------------------------------------------ helpers
    def _file_path(self, ctx: Ctx) -> str:
        try:
            return normalize_file_path(ctx.path)
        except CosPathError as exc:
            raise ApiError(-180, exc.message) from None

    def _folder_path(self, path: str) -> str:
        try:
            return normalize_folder_path(path)
        except CosPathError as exc:
            raise ApiError(-180, exc.message) from None

    def urls(self, ctx: Ctx, path: str) -> dict[str, Any]:
        urls = object_urls(ctx.bucket.appid, ctx.bucket.bucket, path, api_version=ctx.api_version,  # type: ignore[arg-type]
                           region=self.settings.region, api_endpoint=self._base_url())
        return {"access_url": urls.access_url, "resource_path": urls.resource_path,
                "source_url": urls.source_url, "url": urls.url, "preview_url": urls.access_url}

    def _file_info(self, ctx: Ctx, meta: ObjectMeta) -> dict[str, Any]:
        return {"name": meta.name, "filesize": meta.filesize, "filelen": meta.filesize, "sha": meta.sha,
                "ctime": str(meta.ctime), "mtime": str(meta.mtime), "biz_attr": meta.biz_attr,
                **self.urls(ctx, meta.path)}

    def _session_info(self, ctx: Ctx, state: SessionState) -> dict[str, Any]:
        return {"name": state.path.rsplit("/", 1)[-1], "filesize": state.filesize,
                "filelen": state.bytes_received, "sha": state.sha, "ctime": str(state.ctime),
                "mtime": str(state.ctime), "biz_attr": state.biz_attr, **self.urls(ctx, state.path)}

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

    def _instant_or_conflict(self, ctx: Ctx, path: str, filesize: int, sha: str, insert_only: bool,
                             biz_attr: str) -> dict[str, Any] | None:
        """秒传: URLs if the content is already at ``path`` or elsewhere in the bucket; -177 on conflict."""
        store = ctx.store
        with store.lock:
            existing = store.get(path)
            if existing is not None and existing.kind == "file":
                if sha and existing.sha == sha and existing.filesize == filesize:
                    return self.urls(ctx, path)
                if insert_only:
                    raise ApiError(-177, "file exists and insertOnly=1")
            if sha:
                source = store.find_by_sha(sha, filesize)
                if source is not None:
                    store.commit_file(path, store.blob_path(source), size=filesize, sha=sha,
                                      biz_attr=biz_attr, link=True)
                    self.stats.completed()
                    return self.urls(ctx, path)
        return None

    # ------------------------------------------------------------------------------------ simple ops
    def op_upload(self, ctx: Ctx) -> Reply:
        path = self._file_path(ctx)
        if ctx.upload is None:
            raise ApiError(-61, "missing filecontent")
        sha = self._sha_field(ctx.fields)
        actual = ctx.upload.sha1
        if actual is None:  # op was not known when the part started; hash now
            import hashlib

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
                if existing.sha == actual:
                    return ok(self.urls(ctx, path))
                raise ApiError(-177, "file exists and insertOnly=1")
            state = store.session_at(path)
            if state is not None:
                store.discard_session(state.session)
            store.commit_file(path, ctx.upload.path, size=ctx.upload.length, sha=actual,
                              biz_attr=ctx.fields.get("biz_attr", ""))
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
        state = store.session_at(path)
        if state is not None:
            return ok(self._session_info(ctx, state))
        meta = store.get(path)
        if meta is None or meta.kind != "file":
            raise ApiError(-166, "file does not exist")
        return ok(self._file_info(ctx, meta))

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
            if store.get(folder) is not None or store.get(folder.rstrip("/")) is not None \
                    or store.session_at(folder.rstrip("/")) is not None:
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
    def _new_session(self, ctx: Ctx, path: str, filesize: int, sha: str, insert_only: bool,
                     parts: list[dict[str, Any]] | None) -> SessionState:
        requested = _int_field(ctx.fields, "slice_size", required=False)
        if requested is not None and requested <= 0:
            raise ApiError(-61, "slice_size must be positive")
        slice_size = self.settings.answer_slice_size(requested, api_version=ctx.api_version)
        sid = f"{uuid.uuid4()}+{base64.b64encode(uuid.uuid4().bytes[:7]).decode('ascii')}"
        state = SessionState(session=sid, path=path, api_version=ctx.api_version, filesize=filesize,
                             slice_size=slice_size, sha=sha, uploadparts=parts,
                             biz_attr=ctx.fields.get("biz_attr", ""), insert_only=insert_only,
                             ctime=int(time.time()))
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
        offset = _int_field(ctx.fields, "offset")
        assert offset is not None
        if ctx.upload is None:
            raise ApiError(-61, "missing filecontent")
        length = ctx.upload.length
        beyond = offset >= state.filesize and not offset == 0 == state.filesize
        if offset < 0 or offset % state.slice_size or beyond:
            raise ApiError(-4021, f"offset {offset} is not a slice start (slice_size {state.slice_size})")
        if length != state.slice_length(offset):
            raise ApiError(-4021, f"slice at {offset} must be {state.slice_length(offset)} bytes, got {length}")
        try:
            ctx.store.add_slice(state, offset, ctx.upload.path, length)
        except SessionGone:
            raise ApiError(-4020, "session was discarded") from None
        return offset, length

    def _finalize(self, ctx: Ctx, state: SessionState, *, sha: str = "") -> dict[str, Any]:
        """Assemble, verify and commit a complete session; idempotent under concurrency."""
        store = ctx.store
        with state.finish_lock:
            if store.session(state.session) is not state:
                meta = store.get(state.path)
                if meta is not None and meta.session == state.session:
                    return self.urls(ctx, state.path)
                raise ApiError(-4020, "session was discarded")
            if not state.complete:
                missing = [o for o in state.expected_offsets() if state.received.get(o) != state.slice_length(o)]
                raise ApiError(-4022, f"{len(missing)} slice(s) missing, first at {missing[0]}")
            checkpoints: set[int] = set()
            parts = state.uploadparts if self.settings.check_uploadparts else None
            if parts:
                checkpoints = {p["offset"] + p["datalen"] for p in parts[:-1]}
            try:
                assembled = store.assemble(state, checkpoints)
            except SessionGone:
                raise ApiError(-4020, "session was discarded") from None
            try:
                if assembled.size != state.filesize:
                    raise ApiError(-175, "assembled size differs from filesize")
                for expected, what in ((state.sha, "init sha"), (sha, "sha")):
                    if expected and expected != assembled.sha:
                        raise ApiError(-174, f"{what} does not match the uploaded content")
                if parts:
                    for part in parts[:-1]:
                        end = part["offset"] + part["datalen"]
                        if assembled.states.get(end) != part["datasha"]:
                            raise ApiError(-174, f"uploadparts datasha at offset {part['offset']} mismatch")
                    if parts[-1]["datasha"] != assembled.sha:
                        raise ApiError(-174, "last uploadparts datasha is not the file SHA-1")
                with store.lock:
                    self._check_parent(store, state.path)
                    existing = store.get(state.path)
                    if existing is not None and existing.kind == "file" and state.insert_only \
                            and existing.sha != assembled.sha:
                        raise ApiError(-177, "file exists and insertOnly=1")
                    store.commit_file(state.path, assembled.tmp_path, size=assembled.size, sha=assembled.sha,
                                      biz_attr=state.biz_attr, session=state.session)
                    store.discard_session(state.session)
            finally:
                assembled.tmp_path.unlink(missing_ok=True)
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
        return {"session": state.session, "offset": state.first_missing() if state.api_version == "v1" else 0,
                "slice_size": state.slice_size, "serial_upload": 1 if self.settings.serial_upload else 0}

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
            if state is not None and sha and state.sha == sha and state.filesize == filesize \
                    and state.api_version == "v1" and not state.complete:
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
        offset, _ = self._store_slice(ctx, state)
        data: dict[str, Any] = {"session": state.session, "offset": offset}
        if state.complete:
            data.update(self._finalize(ctx, state))
        return ok(data)

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
        offset, length = self._store_slice(ctx, state)
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
            return ok({"session": state.session, "filesize": state.filesize, "slice_size": state.slice_size,
                       "sha": state.sha, "serial_upload": 1 if self.settings.serial_upload else 0,
                       "listparts": parts})
        meta = ctx.store.get(path)
        if meta is not None and meta.kind == "file":
            return ok(self.urls(ctx, path))
        raise ApiError(-166, "no unfinished upload and no file at this path", status=404)

    # ------------------------------------------------------------------------------------ control
    def _control(self, ex: Exchange, raw_path: str, query: str) -> Reply:
        try:
            raw = bytearray()
            while True:
                chunk = ex.reader.read()
                if not chunk:
                    break
                raw += chunk
                if len(raw) > 1 << 20:
                    return envelope(-61, "control body too large", status=400)
            payload: Any = json.loads(raw.decode("utf-8")) if raw.strip() else {}
        except (ValueError, UnicodeDecodeError):
            return envelope(-61, "control body must be JSON", status=400)
        except BadRequest as exc:
            reply = envelope(-61, exc.detail, status=400)
            reply.close = True
            return reply
        try:
            if raw_path == "/_emulator/faults":
                if ex.method == "POST":
                    rules = payload if isinstance(payload, list) else [payload]
                    for item in rules:
                        if not isinstance(item, dict):
                            raise ValueError("a fault rule must be a JSON object")
                        self.faults.add(FaultRule.from_dict(item))
                    return ok({"faults": [r.as_dict() for r in self.faults.active()]})
                if ex.method == "DELETE":
                    self.faults.clear()
                    return ok()
                if ex.method == "GET":
                    return ok({"faults": [r.as_dict() for r in self.faults.active()]})
            elif raw_path == "/_emulator/stats":
                if ex.method == "GET":
                    return ok(self.stats.snapshot().as_dict())
                if ex.method == "DELETE":
                    self.stats.reset()
                    return ok()
            elif raw_path == "/_emulator/settings":
                if ex.method == "POST":
                    if not isinstance(payload, dict):
                        raise ValueError("settings must be a JSON object")
                    self.settings.update(payload)
                    return ok(self.settings.as_dict())
                if ex.method == "GET":
                    return ok(self.settings.as_dict())
            else:
                return envelope(-61, "unknown control endpoint", status=404)
        except (ValueError, TypeError) as exc:
            return envelope(-61, str(exc), status=400)
        return envelope(-61, "method not allowed", status=405)
