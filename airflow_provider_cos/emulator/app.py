"""The COS service: routing, the one request pipeline, auth, faults, control endpoints.

:class:`CosApp` is transport-independent: the HTTP layer hands it an :class:`Exchange` (method, target,
headers, a body reader) and sends back the :class:`Reply`. ``/files/v1`` and ``/files/v2`` are the JSON
API (failures are envelopes ``{"code","message","data"}`` with the HTTP status from ``ERROR_TABLE``);
every other URL is the XML API (failures are ``<Error>`` documents, see :mod:`.xmlapi`). All three
generations go through :meth:`CosApp._handle_api` once; only a bug gives a 500 (and is logged). The
operations themselves are in :mod:`airflow_provider_cos.emulator.operations` and :mod:`.xmlapi`.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from airflow_provider_cos.emulator.config import BucketConfig, EmulatorSettings
from airflow_provider_cos.emulator.downloads import DOWNLOAD_OP, JsonDownloads
from airflow_provider_cos.emulator.faults import FaultBook, FaultRule, StatsCounter
from airflow_provider_cos.emulator.httpio import (
    BadRequest,
    NullSink,
    RequestBody,
    Sink,
    SpoolSink,
    read_body,
    read_raw,
    read_small,
)
from airflow_provider_cos.emulator.operations import CosOperations, Ctx
from airflow_provider_cos.emulator.replies import (
    ApiError,
    DropConnection,
    Exchange,
    Reply,
    envelope,
    error_reply,
    ok,
)
from airflow_provider_cos.emulator.storage import (
    BucketStore,
    SessionBusy,
    SessionGone,
    SliceWriter,
    is_storage_full,
)
from airflow_provider_cos.emulator.xmlapi import (
    DATA_OPS,
    MAX_COMPLETE_BODY,
    MAX_PART_SIZE,
    XmlError,
    XmlOperations,
    XmlRoute,
    xml_data_hashers,
)
from airflow_provider_cos.protocol.errors import CosAuthError, xml_spec
from airflow_provider_cos.protocol.paths import decode_path
from airflow_provider_cos.protocol.signing import SignatureFields, verify

log = logging.getLogger("airflow_provider_cos.emulator")

_ROUTE = re.compile(r"^/files/(v1|v2)/([^/?]+)/([^/?]+)(/[^?]*)?$")
ONCE_OPS = frozenset({"delete", "update", "move", "copy"})
STORAGE_FULL_CODE = -4023


@dataclass
class Request:
    """One routed API request on its way through the pipeline, with the once-only decisions it collects."""

    ex: Exchange
    api_version: str
    cfg: BucketConfig
    store: BucketStore
    raw_obj: str
    path: str
    query_fields: dict[str, str]
    sign_param: str | None
    op: str = ""  # known from the URL (XML, a JSON download); other JSON ops come with the body
    xml: XmlRoute | None = None
    auth: tuple[str, SignatureFields | XmlRoute | Exception] | None = None
    fault_decided: bool = False
    fault_rule: FaultRule | None = None


class CosApp(CosOperations, XmlOperations, JsonDownloads):
    """The emulated service. Thread-safe: state lives in :class:`BucketStore` objects and locked counters."""

    def __init__(
        self,
        data_dir: Path,
        buckets: list[BucketConfig],
        settings: EmulatorSettings,
        faults: FaultBook,
        stats: StatsCounter,
        base_url: Callable[[], str],
        clock: Callable[[], float] = time.time,
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
        self._clock = clock
        self._buckets: dict[tuple[str, str], tuple[BucketConfig, BucketStore]] = {}
        for cfg in buckets:
            store = BucketStore(
                data_dir / "buckets" / f"{cfg.appid}-{cfg.bucket}",
                self.tmp_dir,
                clock=clock,
                session_ttl=lambda: self.settings.session_ttl,
            )
            self._buckets[(cfg.appid, cfg.bucket)] = (cfg, store)
        self._used_once: set[tuple[str, int, str, str]] = set()
        self._once_lock = threading.Lock()

    def close(self) -> None:
        for _cfg, store in self._buckets.values():
            store.close()

    # ------------------------------------------------------------------------------------ entry
    def handle(self, ex: Exchange) -> Reply:
        target = ex.target
        if not target.startswith("/"):  # absolute-form request line (sent through an HTTP proxy)
            parts = urlsplit(target)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        raw_path, _, query = target.partition("?")
        if raw_path.startswith("/_emulator/"):
            return self._control(ex, raw_path, query)
        xml = not raw_path.startswith("/files/")  # the JSON API lives under /files/v1|v2, XML everywhere else
        try:
            return self._handle_api(ex, raw_path, query, xml=xml)
        except XmlError as exc:
            reply = self.xml_error_reply(exc, resource=self._resource(ex, raw_path), method=ex.method)
            reply.close = not ex.reader.exhausted  # refused before its body was read
            return reply
        except ApiError as exc:
            return error_reply(exc.code, exc.detail, status=exc.status)
        except BadRequest as exc:
            if xml:
                reply = self.xml_error_reply(
                    XmlError("InvalidArgument", exc.detail), resource=self._resource(ex, raw_path), method=ex.method
                )
            else:
                reply = error_reply(exc.code, exc.detail)
            reply.close = exc.close
            return reply
        except OSError as exc:
            if not is_storage_full(exc):
                raise
            log.warning("storage full while serving %s: %s", raw_path, exc.strerror)
            detail = f"the emulator's disk is full ({exc.strerror})"
            if xml:
                reply = self.xml_error_reply(
                    XmlError("InsufficientStorage", detail, status=507),
                    resource=self._resource(ex, raw_path),
                    method=ex.method,
                )
            else:
                reply = error_reply(STORAGE_FULL_CODE, detail)
            reply.close = not ex.reader.exhausted  # the rest of the body is not read
            return reply

    @staticmethod
    def _resource(ex: Exchange, raw_path: str) -> str:
        return ex.headers.get("host", "") + raw_path

    def _handle_api(self, ex: Exchange, raw_path: str, query: str, *, xml: bool) -> Reply:
        """The one pipeline of the three generations: parse (route), read the body into the sink chosen
        when the data starts, apply faults, authenticate, dispatch. Faults and authentication are each
        decided once per request (:meth:`_fault`, :meth:`_authenticate` remember their outcome in the
        :class:`Request`), wherever in the body they are first needed."""
        req = self._route_xml(ex, raw_path, query) if xml else self._route(ex, raw_path, query)
        body = self._read_body(req)
        try:
            fields = {**req.query_fields, **body.fields}
            op = req.op or fields.get("op", "").strip()
            sink = body.upload.sink if body.upload is not None else None
            if isinstance(sink, SliceWriter) and (
                not self._is_slice_data(op, fields)
                or fields.get("session", "").strip() != sink.state.session
                or fields.get("offset", "").strip() != str(sink.offset)
            ):
                raise ApiError(-61, "op, session or offset changed after the filecontent part")
            if op:
                self.stats.request(op)
            if body.upload is not None and (self._is_slice_data(op, fields) or op == "UploadPart"):
                self.stats.slice_bytes(body.upload.length)
            rule = self._fault(req, op, fields, has_file=body.upload is not None)
            if rule is not None and rule.answers:
                return self._fault_reply(req, op, rule)
            signature = self._authenticate(req, op)
            if req.xml is not None:
                return self.dispatch_xml(req.xml, ex.method, ex.headers, body.upload, body.raw)
            if not op:
                raise ApiError(-60, "no op field")
            assert not isinstance(signature, XmlRoute)
            ctx = Ctx(req.api_version, req.cfg, req.store, req.raw_obj, req.path, op, fields, body.upload, signature)
            return self._dispatch(ctx, ex.method, ex.headers)
        finally:
            if body.upload is not None:
                body.upload.discard()

    def _read_body(self, req: Request) -> RequestBody:
        ex = req.ex
        if req.xml is not None and req.op in DATA_OPS:
            length = ex.headers.get("content-length", "")
            if length.isdigit() and int(length) > MAX_PART_SIZE:  # refused before 5 GiB are read
                raise XmlError("EntityTooLarge", "a PutObject body or a part is at most 5 GiB")
            return read_raw(ex.reader, lambda: self._sink_for(req, {}), xml_data_hashers(req.op))
        if req.xml is not None and req.op == "CompleteMultipartUpload":
            return RequestBody({}, None, read_small(ex.reader, MAX_COMPLETE_BODY))
        if req.xml is None and ex.method == "POST":
            return read_body(
                ex.reader,
                ex.headers.get("content-type", ""),
                lambda fields, _consumed: self._sink_for(req, {**req.query_fields, **fields}),
            )
        if not ex.reader.exhausted:
            ex.reader.drain()
        return RequestBody({}, None)

    def _route_xml(self, ex: Exchange, raw_path: str, query: str) -> Request:
        route = self.route_xml(
            ex.method, raw_path, parse_qsl(query, keep_blank_values=True), ex.headers.get("host", "")
        )
        route.store.expire_sessions()
        return Request(
            ex, "xml", route.cfg, route.store, raw_path, "/" + route.key, route.query, None, op=route.op, xml=route
        )

    def _route(self, ex: Exchange, raw_path: str, query: str) -> Request:
        query_fields: dict[str, str] = {}
        sign_param: str | None = None
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key.lower() == "sign":
                sign_param = value
            else:
                query_fields.setdefault(key.lower(), value)
        match = _ROUTE.match(raw_path)
        if not match:
            raise ApiError(-180, "URL is not /files/v1|v2/<appid>/<bucket>/<path>")
        api_version, appid, bucket_name, raw_obj = match.groups()
        entry = self._buckets.get((appid, bucket_name))
        if entry is None:
            raise ApiError(-133, "no such appid/bucket")
        cfg, store = entry
        path = self._decode_path(raw_obj or "/")
        op = DOWNLOAD_OP if ex.method == "GET" and "op" not in query_fields else ""  # GET of the object URL
        store.expire_sessions()
        return Request(ex, api_version, cfg, store, raw_obj or "/", path, query_fields, sign_param, op=op)

    def _sink_for(self, req: Request, fields: dict[str, str]) -> Sink:
        """Where the binary part goes, decided when it starts: nowhere if a fault answers the request or the
        slice request is refused already; straight into the session's data file if it is a valid,
        authenticated slice; else a spool file."""
        op = req.op or fields.get("op", "").strip()
        rule = self._fault(req, op, fields, has_file=True)
        if rule is not None and rule.answers:
            return NullSink()
        if req.xml is not None:
            try:
                self._authenticate(req, op)
            except XmlError:
                return NullSink()  # refused after the body, with the same error
            return SpoolSink(self.tmp_dir)
        if not self._is_slice_data(op, fields) or (req.api_version == "v1") != (op == "upload_slice"):
            return SpoolSink(self.tmp_dir)
        try:
            self._authenticate(req, op)
        except ApiError:
            return NullSink()  # refused after the body, with the same error
        state = req.store.session(fields.get("session", "").strip())
        offset_text = fields.get("offset", "").strip()
        try:
            file_path = self._file_path_of(req.path)
        except ApiError:
            return SpoolSink(self.tmp_dir)
        if (
            state is None
            or state.path != file_path
            or state.api_version != req.api_version
            or not offset_text.isdigit()
            or len(offset_text) > 20
            or not state.valid_offset(int(offset_text))
        ):
            return SpoolSink(self.tmp_dir)  # answered with the precise error after the body
        try:
            return req.store.begin_slice(state, int(offset_text), wait=True)
        except (SessionGone, SessionBusy):
            return SpoolSink(self.tmp_dir)

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
            alias = "upload_slice_data" if has_file else "upload_slice_init"
            return (op, alias)
        return (op,)

    # ------------------------------------------------------------------------------------ faults
    def _fault(self, req: Request, op: str, fields: Mapping[str, str], *, has_file: bool) -> FaultRule | None:
        """The fault rule for this request, taken (counted down) once: when the file part starts, or after
        the body. A drop closes the connection here (after reading ``after_bytes`` of the body); a delay
        waits here; a rule that answers is returned (the caller answers with it)."""
        if req.fault_decided:
            return req.fault_rule
        req.fault_decided = True
        rule = req.fault_rule = self.faults.take(self._op_names(op, fields, has_file), req.path)
        if rule is None:
            return None
        self.stats.fault()
        if rule.delay:
            time.sleep(rule.delay)
        if rule.drop:
            reader = req.ex.reader
            if rule.after_bytes is not None:
                while reader.consumed < rule.after_bytes and not reader.exhausted:
                    if not reader.read(min(256 * 1024, rule.after_bytes - reader.consumed)):
                        break
            raise DropConnection()
        return rule

    def _fault_reply(self, req: Request, op: str, rule: FaultRule) -> Reply:
        if req.xml is not None and not (rule.garbage or rule.empty or rule.plain):
            code = rule.xml_code or ("SlowDown" if rule.status == 503 else "InternalError")
            try:
                status = rule.status or xml_spec(code).http_status
            except KeyError:
                status = 500
            return self.xml_fault_body(op, code, status, self._resource(req.ex, req.raw_obj))
        if rule.garbage:
            return Reply(200, b"<html><body>502 proxy garbage, not JSON</body></html>", "text/html")
        if rule.empty:
            return Reply(200, b"")
        if rule.status is not None:
            if rule.plain:
                return Reply(rule.status, f"injected HTTP {rule.status}\n".encode(), "text/plain")
            return error_reply(rule.code if rule.code is not None else -181, "injected fault", status=rule.status)
        return error_reply(rule.code if rule.code is not None else -181, "injected fault")

    # ------------------------------------------------------------------------------------ auth
    def _authenticate(self, req: Request, op: str) -> SignatureFields | XmlRoute:
        """The request's verified signature (JSON: its fields; XML: the route it was checked for), checked
        once (a one-time signature is spent once); a later call returns the same outcome, and refuses an
        op that changed in between."""
        if req.auth is not None:
            auth_op, outcome = req.auth
            if auth_op != op:
                raise ApiError(-61, "op changed after the filecontent part")
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        result: SignatureFields | XmlRoute
        try:
            if req.xml is not None:
                self.verify_xml(req.xml, req.ex.method, req.raw_obj, req.ex.headers)
                result = req.xml
            else:
                result = self._verify(req.ex, req.sign_param, req.cfg, req.path, op)
        except (ApiError, XmlError) as exc:
            req.auth = (op, exc)
            raise
        req.auth = (op, result)
        return result

    def _verify(self, ex: Exchange, sign_param: str | None, cfg: BucketConfig, path: str, op: str) -> SignatureFields:
        header = ex.headers.get("authorization")
        signature = header if header else sign_param
        if signature and sign_param is not None and not header and " " in signature:
            # base64 never contains a space: a '+' was sent un-encoded in the query string
            raise ApiError(-70, "sign parameter is not URL-encoded ('+' arrived as a space)")
        try:
            fields = verify(
                signature or "",
                lambda sid: cfg.secret_key if sid == cfg.secret_id else None,
                appid=cfg.appid,
                bucket=cfg.bucket,
                now=int(time.time()),
            )
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
            download_form = op == DOWNLOAD_OP and f_decoded == path  # f = the object path alone (§2.3)
            if (
                f_decoded
                and f_decoded != resource
                and not resource.startswith(f_decoded.rstrip("/") + "/")
                and not download_form
            ):
                raise ApiError(-95, "multi-effect signature f is neither the resource nor a folder prefix")
            if op in ("delete", "update") and self.settings.delete_requires_once:
                raise ApiError(-98, f"op={op} needs a one-time signature")
        return fields

    # ------------------------------------------------------------------------------------ dispatch
    def _dispatch(self, ctx: Ctx, method: str, headers: Mapping[str, str]) -> Reply:
        op = ctx.op
        if op == DOWNLOAD_OP:
            return self.op_download(ctx, headers)
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
            post_ops.update(
                {
                    "upload_slice_init": self.op_v2_init,
                    "upload_slice_data": self.op_v2_data,
                    "upload_slice_finish": self.op_v2_finish,
                    "upload_slice_list": self.op_v2_list,
                }
            )
        handler = get_ops.get(op) or post_ops.get(op)
        if handler is None:
            raise ApiError(-61, f"unsupported op {op!r} on /files/{ctx.api_version}")
        if op in post_ops and method != "POST":
            raise ApiError(-61, f"op={op} needs POST", status=405)
        return handler(ctx)

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
        except (ValueError, UnicodeDecodeError, RecursionError):
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
