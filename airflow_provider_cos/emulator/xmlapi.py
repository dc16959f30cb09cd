"""The COS XML API (COS_XML_API.md §4-§5, emulator checklist §9), as a mixin of :class:`CosApp`.

Same server, same storage as the JSON API: the key ``a/b.txt`` is the JSON path ``/a/b.txt`` (a key
ending in ``/`` is a folder), so an object put here is seen by a v1/v2 ``stat`` and one uploaded through
``/files/v1`` is seen by HeadObject/GetObject. The request goes through the app's one pipeline; this
module adds the XML parts: addressing (:meth:`XmlOperations.route_xml`), the signature check
(:meth:`XmlOperations.verify_xml`) and the operations (``xml_*``), all built on ``protocol.xmlsigning``,
``protocol.xmlmessages`` and ``protocol.crc64``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any

from airflow_provider_cos.emulator.config import BucketConfig, EmulatorSettings
from airflow_provider_cos.emulator.faults import StatsCounter
from airflow_provider_cos.emulator.httpio import Spooled
from airflow_provider_cos.emulator.replies import Reply
from airflow_provider_cos.emulator.storage import CHUNK, BucketStore, ObjectMeta, SessionGone, UploadState
from airflow_provider_cos.protocol.crc64 import Crc64, crc64_fold, format_crc64
from airflow_provider_cos.protocol.errors import CosAuthError, CosPathError, CosProtocolError, xml_spec
from airflow_provider_cos.protocol.xmlmessages import (
    CompletedUpload,
    ErrorBody,
    InitiatedUpload,
    ObjectEntry,
    ObjectListing,
    PartEntry,
    PartListing,
    UploadEntry,
    UploadListing,
    multipart_etag,
    parse_complete_request,
    quote_etag,
    unquote_etag,
)
from airflow_provider_cos.protocol.xmlsigning import find_signature, uri_pathname_of, verify

MAX_KEY_BYTES = 850
MAX_PART_NUMBER = 10000
MAX_PART_SIZE = 5 * 1024**3
LIST_MAX = 1000
MAX_COMPLETE_BODY = 4 * 1024 * 1024
_VHOST = re.compile(r"^([a-z0-9](?:[a-z0-9-]*[a-z0-9])?)-([0-9]+)\.cos\.([A-Za-z0-9.-]+?)\.[^:]+(?::\d+)?$")
#: keep-alive whitespace sent before the Complete result (COS streams spaces while it merges)
COMPLETE_KEEPALIVE = b"\n" + b" " * 64 + b"\n"
_EMPTY_MD5 = hashlib.md5(b"").hexdigest()

#: XML operations whose body is the object data (read into a sink), and the one with an XML body.
DATA_OPS = frozenset({"PutObject", "UploadPart"})


#: The emulator's answer (421 Misdirected Request) for a ``Host`` that looks like a custom domain but is
#: bound to no bucket (not in COS's error table: COS never receives requests for names it does not host).
UNBOUND_DOMAIN = "NoSuchCustomDomain"
#: Domains under which a host name is one of COS's own (service endpoints such as ``cos.<region>...``).
COS_DOMAINS = ("myqcloud.com", "tencentcos.cn")


def host_name(host: str) -> str:
    """The name of a ``Host`` header value, lowercased, without the port (``[::1]:80`` -> ``::1``)."""
    text = host.strip().lower()
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else text[1:]
    name, sep, port = text.rpartition(":")
    return name if sep and port.isdigit() and ":" not in name else text


def is_own_address(name: str) -> bool:
    """A host name that addresses the emulator itself rather than a bucket: empty (no ``Host``), an IP
    address, ``localhost`` (or ``*.localhost``), a single label (``cos-emulator``, a container's name), or a
    name under COS's own domains (the service endpoint ``cos.<region>.myqcloud.com``, path style)."""
    if not name or "." not in name or name == "localhost" or name.endswith(".localhost"):
        return True
    if name.endswith(tuple("." + d for d in COS_DOMAINS)):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class XmlError(Exception):
    """An XML API error answer: ``<Code>`` from the XML error table (or ``status`` for a code outside it)."""

    def __init__(self, code: str, detail: str = "", *, status: int | None = None) -> None:
        super().__init__(detail or code)
        self.code = code
        self.detail = detail
        self.status = status


@dataclass
class XmlRoute:
    """Where an XML request goes: bucket, decoded key, operation, and the path-style prefix if used."""

    cfg: BucketConfig
    store: BucketStore
    key: str
    op: str
    params: list[tuple[str, str]]
    path_style_prefix: str = ""
    query: dict[str, str] = field(default_factory=dict)


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


def _int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = query.get(name, "")
    if text == "":
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise XmlError("InvalidArgument", f"{name} must be an integer in {low}..{high}, got {text[:20]!r}")
    return int(text)


def _encoding(query: Mapping[str, str]) -> str | None:
    value = query.get("encoding-type")
    if value in (None, ""):
        return None
    if value != "url":
        raise XmlError("InvalidArgument", f"encoding-type must be 'url', got {value[:20]!r}")
    return value


def _sorted_keys(keys: list[str]) -> list[str]:
    return sorted(keys, key=lambda k: k.encode("utf-8"))


def _roll_up(keys: list[str], prefix: str, delimiter: str | None) -> list[tuple[str, bool]]:
    """``(key or common prefix, is_prefix)`` in UTF-8 order, each common prefix once."""
    out: list[tuple[str, bool]] = []
    seen: set[str] = set()
    for key in keys:
        if delimiter:
            cut = key.find(delimiter, len(prefix))
            if cut >= 0:
                common = key[: cut + len(delimiter)]
                if common not in seen:
                    seen.add(common)
                    out.append((common, True))
                continue
        out.append((key, False))
    return out


class XmlOperations:
    """XML addressing, authentication and operations; the host class provides the rest."""

    settings: EmulatorSettings
    stats: StatsCounter
    tmp_dir: Path
    _buckets: dict[tuple[str, str], tuple[BucketConfig, BucketStore]]
    _clock: Callable[[], float]

    # ------------------------------------------------------------------------------------ addressing
    def route_xml(self, method: str, raw_path: str, params: list[tuple[str, str]], host: str) -> XmlRoute:
        """The bucket from the ``Host`` header (:meth:`_bucket_of_host`), or from a path-style first segment,
        else the default bucket; the key is the decoded rest of the path."""
        try:
            path = uri_pathname_of(raw_path)
        except CosPathError:
            raise XmlError("InvalidObjectName", "the key is not valid percent-encoded UTF-8") from None
        prefix = ""
        entry = self._bucket_of_host(host)
        if entry is None:
            by_name = {f"{cfg.bucket}-{cfg.appid}": (cfg, store) for cfg, store in self._buckets.values()}
            first = path.lstrip("/").split("/", 1)[0]
            if first in by_name:
                entry = by_name[first]
                prefix = "/" + first
                path = path[len(prefix) :] or "/"
            else:
                entry = next(iter(self._buckets.values()))
        cfg, store = entry
        key = path[1:] if path.startswith("/") else path
        query = {k.lower(): v for k, v in reversed(params)}
        op = self._xml_op(method, key, query)
        if op not in ("GetBucket", "ListMultipartUploads"):
            if not key:
                raise XmlError("InvalidObjectName", "the object key is empty")
            if len(key.encode("utf-8")) > MAX_KEY_BYTES:
                raise XmlError("KeyTooLong", f"the key has {len(key.encode('utf-8'))} bytes (at most 850)")
            if any(ord(c) < 0x20 or c == "\x7f" for c in key) or key.startswith(("/", "\\")):
                raise XmlError("InvalidObjectName", "control character or leading '/' or '\\' in the key")
        return XmlRoute(cfg, store, key, op, params, prefix, query)

    def _bucket_of_host(self, host: str) -> tuple[BucketConfig, BucketStore] | None:
        """The bucket ``Host`` names, in this order: a custom domain bound to it (``settings.custom_domains``,
        matched without the port); its virtual host ``<bucket>-<appid>.cos.<region>.<domain>``. ``None`` for
        an address of the emulator itself (:func:`is_own_address`): path style or the default bucket then.
        Any other name looks like a custom domain nobody bound: 421 ``NoSuchCustomDomain``, rather than
        serving the default bucket under a name that would reach a different bucket in COS."""
        text = host.strip().lower()
        name = host_name(text)
        bound = self.settings.custom_domains.get(name)
        if bound is not None:
            bucket, _, appid = bound.rpartition("-")
            entry = self._buckets.get((appid, bucket))
            if entry is None:
                raise XmlError("NoSuchBucket", f"custom domain {name} is bound to {bound}, which is not served here")
            return entry
        vhost = _VHOST.match(text)
        if vhost:
            entry = self._buckets.get((vhost.group(2), vhost.group(1)))
            if entry is None:
                raise XmlError("NoSuchBucket", f"no bucket {vhost.group(1)}-{vhost.group(2)} here")
            return entry
        if is_own_address(name):
            return None
        raise XmlError(
            UNBOUND_DOMAIN,
            f"Host {name} is neither a bucket's virtual host <bucket>-<appid>.cos.<region>.myqcloud.com nor a "
            f"custom domain bound on this emulator: start it with --custom-domain {name}=<bucket>-<appid> "
            "(or set custom_domains)",
            status=421,
        )

    @staticmethod
    def _xml_op(method: str, key: str, query: Mapping[str, str]) -> str:
        if method == "PUT":
            if "partnumber" in query or "uploadid" in query:
                return "UploadPart"
            return "PutObject"
        if method == "POST":
            if "uploads" in query:
                return "InitiateMultipartUpload"
            if "uploadid" in query:
                return "CompleteMultipartUpload"
        elif method == "GET":
            if not key:
                return "ListMultipartUploads" if "uploads" in query else "GetBucket"
            return "ListParts" if "uploadid" in query else "GetObject"
        elif method == "HEAD":
            return "HeadObject"
        elif method == "DELETE":
            return "AbortMultipartUpload" if "uploadid" in query else "DeleteObject"
        raise XmlError("MethodNotAllowed", f"{method} is not supported on this resource")

    # ------------------------------------------------------------------------------------ auth
    def verify_xml(self, route: XmlRoute, method: str, raw_path: str, headers: Mapping[str, str]) -> None:
        """The signature checked as COS does (§2.7): header or query placement, listed headers and
        parameters only, the decoded path (path style: with or without the bucket segment), the time
        window and skew; errors as XML (AccessDenied, InvalidAccessKeyId, SignatureDoesNotMatch,
        RequestTimeTooSkewed)."""
        cfg = route.cfg
        try:
            signature = find_signature(headers, route.params)
            if signature is None:
                raise XmlError("AccessDenied", "Access Denied. (the request is not signed)")
            path = uri_pathname_of(raw_path)
            paths = [path]
            if route.path_style_prefix:
                paths.append(path[len(route.path_style_prefix) :] or "/")
            verify(
                signature,
                lambda sid: cfg.secret_key if sid == cfg.secret_id else None,
                method=method,
                uri_pathname=paths,
                params=route.params,
                headers=headers,
                now=int(self._clock()),
            )
        except CosAuthError as exc:
            raise XmlError(exc.error_code or "AccessDenied", exc.message) from None

    # ------------------------------------------------------------------------------------ replies
    def xml_error_reply(self, exc: XmlError, *, resource: str, method: str) -> Reply:
        try:
            spec = xml_spec(exc.code)
            status, message = spec.http_status, exc.detail or spec.message
        except KeyError:
            status, message = exc.status or 400, exc.detail or exc.code
        request_id = uuid.uuid4().hex
        body = ErrorBody(exc.code, message, resource, request_id, request_id).render()
        headers = [("x-cos-request-id", request_id), ("x-cos-trace-id", request_id)]
        if method == "HEAD":
            return Reply(exc.status or status, b"", "application/xml", headers=headers, content_length=0)
        return Reply(exc.status or status, body, "application/xml", headers=headers)

    @staticmethod
    def _xml_reply(
        status: int,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
        *,
        content_type: str = "application/xml",
        content_length: int | None = None,
    ) -> Reply:
        return Reply(
            status,
            body,
            content_type,
            headers=[("x-cos-request-id", uuid.uuid4().hex), *(headers or [])],
            content_length=content_length,
        )

    def xml_fault_body(self, op: str, code: str, status: int, resource: str) -> Reply:
        """A fault's answer for an XML operation; ``status=200`` on Complete puts the error in the 200."""
        request_id = uuid.uuid4().hex
        if op == "CompleteMultipartUpload" and status == 200:
            body = (
                COMPLETE_KEEPALIVE
                + ErrorBody(code, "injected fault", resource, request_id, request_id).render_after_whitespace()
            )
            return self._xml_reply(200, body)
        return self.xml_error_reply(XmlError(code, "injected fault", status=status), resource=resource, method="GET")

    # ------------------------------------------------------------------------------------ dispatch
    def dispatch_xml(
        self, route: XmlRoute, method: str, headers: Mapping[str, str], upload: Spooled | None, raw_body: bytes
    ) -> Reply:
        op = route.op
        if op == "PutObject":
            return self.xml_put_object(route, headers, upload)
        if op in ("HeadObject", "GetObject"):
            return self.xml_get_object(route, headers, head=op == "HeadObject")
        if op == "DeleteObject":
            return self.xml_delete_object(route)
        if op == "GetBucket":
            return self.xml_get_bucket(route)
        if op == "InitiateMultipartUpload":
            return self.xml_initiate(route, headers)
        if op == "UploadPart":
            return self.xml_upload_part(route, headers, upload)
        if op == "ListParts":
            return self.xml_list_parts(route)
        if op == "CompleteMultipartUpload":
            return self.xml_complete(route, raw_body)
        if op == "AbortMultipartUpload":
            return self.xml_abort(route)
        if op == "ListMultipartUploads":
            return self.xml_list_uploads(route)
        raise XmlError("MethodNotAllowed", f"{op} is not supported")

    # ------------------------------------------------------------------------------------ objects
    @staticmethod
    def _path(key: str) -> str:
        return "/" + key

    @staticmethod
    def _check_md5(headers: Mapping[str, str], upload: Spooled) -> None:
        sent = headers.get("content-md5")
        if sent is None:
            return
        import base64
        import binascii

        try:
            raw = base64.b64decode(sent.strip(), validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 16:
            raise XmlError("InvalidDigest", "Content-MD5 is not the base64 of 16 bytes")
        if raw.hex() != upload.md5:
            raise XmlError("BadDigest", "the body's MD5 differs from Content-MD5")

    def xml_put_object(self, route: XmlRoute, headers: Mapping[str, str], upload: Spooled | None) -> Reply:
        if upload is None or upload.path is None:
            raise XmlError("MissingContentLength", "no body")
        if upload.length > MAX_PART_SIZE:
            raise XmlError("EntityTooLarge", "an object put in one request is at most 5 GiB")
        self._check_md5(headers, upload)
        assert upload.md5 is not None and upload.crc64 is not None and upload.sha1 is not None
        path = self._path(route.key)
        store = route.store
        if path.endswith("/"):  # a folder marker
            if upload.length:
                raise XmlError("InvalidObjectName", "a key ending in '/' is a folder and must be empty")
            store.put_folder(path, "")
        else:
            with store.lock:
                if store.get(path + "/") is not None:
                    raise XmlError("InvalidObjectName", f"a folder {route.key}/ exists")
                state = store.session_at(path)  # like a JSON simple upload: an open slice session goes
                if state is not None:
                    store.discard_session(state.session)
                store.commit_file(
                    path,
                    upload.path,
                    size=upload.length,
                    sha=upload.sha1,
                    biz_attr="",
                    md5=upload.md5,
                    crc64=upload.crc64,
                    content_type=headers.get("content-type", ""),
                )
            self.stats.completed()
        return self._xml_reply(200, headers=[("ETag", quote_etag(upload.md5)), ("x-cos-hash-crc64ecma", upload.crc64)])

    def _object_headers(self, meta: ObjectMeta) -> list[tuple[str, str]]:
        out = [
            ("ETag", meta.etag or quote_etag(meta.md5)),
            ("Last-Modified", formatdate(meta.mtime, usegmt=True)),
            ("Accept-Ranges", "bytes"),
        ]
        if meta.crc64:
            out.append(("x-cos-hash-crc64ecma", meta.crc64))
        return out

    def xml_get_object(self, route: XmlRoute, headers: Mapping[str, str], *, head: bool) -> Reply:
        store = route.store
        path = self._path(route.key)
        meta = store.get(path)
        if meta is None:
            raise XmlError("NoSuchKey", f"no object {route.key}", status=404)
        meta = store.with_digests(meta)
        size = meta.filesize if meta.kind == "file" else 0
        ctype = meta.content_type or "application/octet-stream"
        out = self._object_headers(meta) if meta.kind == "file" else [("ETag", quote_etag(_EMPTY_MD5))]
        status, start, end = 200, 0, size
        rng = headers.get("range")
        if rng and not head:
            start, end = self._range(rng, size)
            status = 206
            out.append(("Content-Range", f"bytes {start}-{end - 1}/{size}"))
        if head:
            return self._xml_reply(200, b"", out, content_type=ctype, content_length=size)
        data = b""
        if end > start:
            try:
                with open(store.blob_path(meta), "rb") as fh:
                    fh.seek(start)
                    data = fh.read(end - start)
            except FileNotFoundError:  # replaced or deleted meanwhile
                raise XmlError("NoSuchKey", f"no object {route.key}", status=404) from None
        return self._xml_reply(status, data, out, content_type=ctype)

    @staticmethod
    def _range(value: str, size: int) -> tuple[int, int]:
        """``[start, end)`` of a single ``bytes=`` range (RFC 7233 forms); 416 when it starts past the end."""
        match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", value)
        if not match or match.group(1) == match.group(2) == "":
            raise XmlError("InvalidRange", f"unsupported Range {value[:40]!r}", status=416)
        first, last = match.groups()
        if first == "":
            n = int(last)
            return max(0, size - n), size
        start = int(first)
        if start >= size:
            raise XmlError("InvalidRange", f"range starts at {start}, the object has {size} bytes", status=416)
        end = size if last == "" else min(size, int(last) + 1)
        if end <= start:
            raise XmlError("InvalidRange", f"unsupported Range {value[:40]!r}", status=416)
        return start, end

    def xml_delete_object(self, route: XmlRoute) -> Reply:
        store = route.store
        path = self._path(route.key)
        with store.lock:
            meta = store.get(path)
            if meta is not None and meta.kind == "folder" and store.has_descendants(path):
                raise XmlError("InvalidArgument", f"folder {route.key} is not empty (the JSON API's rule)")
            store.delete(path)
        return self._xml_reply(204)

    def xml_get_bucket(self, route: XmlRoute) -> Reply:
        q = route.query
        prefix, marker = q.get("prefix", ""), q.get("marker", "")
        delimiter = q.get("delimiter") or None
        max_keys = _int_param(q, "max-keys", LIST_MAX, 0, LIST_MAX)
        encoding = _encoding(q)
        metas = {m.path[1:]: m for m in route.store.files() if m.path != "/"}
        keys = _sorted_keys([k for k in metas if k.startswith(prefix)])
        items = [(k, p) for k, p in _roll_up(keys, prefix, delimiter) if k.encode("utf-8") > marker.encode("utf-8")]
        page, truncated = items[:max_keys], len(items) > max_keys
        contents = []
        for key, is_prefix in page:
            if is_prefix:
                continue
            meta = metas[key]
            size = meta.filesize if meta.kind == "file" else 0
            if meta.kind == "file":
                meta = route.store.with_digests(meta)
            etag = meta.etag or quote_etag(meta.md5 or _EMPTY_MD5)
            contents.append(ObjectEntry(key, _iso(meta.mtime), etag, size, owner_id=route.cfg.appid))
        listing = ObjectListing(
            name=f"{route.cfg.bucket}-{route.cfg.appid}",
            prefix=prefix,
            marker=marker,
            max_keys=max_keys,
            delimiter=delimiter,
            is_truncated=truncated,
            next_marker=page[-1][0] if truncated and page else "",
            contents=tuple(contents),
            common_prefixes=tuple(k for k, p in page if p),
            encoding_type=encoding,
        )
        return self._xml_reply(200, listing.render(), [("x-cos-bucket-region", self.settings.xml_region)])

    # ------------------------------------------------------------------------------------ multipart
    def _upload_of(self, route: XmlRoute) -> UploadState:
        upload_id = route.query.get("uploadid", "")
        state = route.store.upload(upload_id)
        if state is None or state.path != self._path(route.key):
            raise XmlError("NoSuchUpload", f"no upload {upload_id[:80]!r} for this key")
        return state

    def xml_initiate(self, route: XmlRoute, headers: Mapping[str, str]) -> Reply:
        if route.key.endswith("/"):
            raise XmlError("InvalidObjectName", "a multipart upload cannot make a folder key")
        state = route.store.create_upload(self._path(route.key), headers.get("content-type", ""))
        body = InitiatedUpload(f"{route.cfg.bucket}-{route.cfg.appid}", route.key, state.upload_id).render()
        return self._xml_reply(200, body)

    def xml_upload_part(self, route: XmlRoute, headers: Mapping[str, str], upload: Spooled | None) -> Reply:
        text = route.query.get("partnumber", "")
        if not text.isdigit() or not 1 <= int(text) <= MAX_PART_NUMBER:
            raise XmlError("InvalidArgument", f"partNumber must be 1..{MAX_PART_NUMBER}, got {text[:20]!r}")
        state = self._upload_of(route)
        if upload is None or upload.path is None:
            raise XmlError("MissingContentLength", "no body")
        if upload.length > MAX_PART_SIZE:
            raise XmlError("EntityTooLarge", "a part is at most 5 GiB")
        self._check_md5(headers, upload)
        assert upload.md5 is not None and upload.crc64 is not None
        try:
            route.store.put_part(state, int(text), upload.path, size=upload.length, md5=upload.md5, crc64=upload.crc64)
        except SessionGone:
            raise XmlError("NoSuchUpload", "the upload was aborted or completed meanwhile") from None
        return self._xml_reply(200, headers=[("ETag", quote_etag(upload.md5)), ("x-cos-hash-crc64ecma", upload.crc64)])

    def xml_list_parts(self, route: XmlRoute) -> Reply:
        state = self._upload_of(route)
        q = route.query
        marker = _int_param(q, "part-number-marker", 0, 0, MAX_PART_NUMBER)
        max_parts = _int_param(q, "max-parts", LIST_MAX, 1, LIST_MAX)
        encoding = _encoding(q)
        with state.lock:
            parts = sorted((p for p in state.parts.values() if p.number > marker), key=lambda p: p.number)
        page, truncated = parts[:max_parts], len(parts) > max_parts
        listing = PartListing(
            bucket=f"{route.cfg.bucket}-{route.cfg.appid}",
            key=route.key,
            upload_id=state.upload_id,
            part_number_marker=marker,
            max_parts=max_parts,
            is_truncated=truncated,
            next_part_number_marker=page[-1].number if page else marker,
            parts=tuple(PartEntry(p.number, _iso(p.mtime), quote_etag(p.md5), p.size) for p in page),
            encoding_type=encoding,
            owner_id=route.cfg.appid,
            initiator_id=route.cfg.appid,
        )
        return self._xml_reply(200, listing.render())

    def xml_complete(self, route: XmlRoute, raw_body: bytes) -> Reply:
        state = self._upload_of(route)
        try:
            listed = parse_complete_request(raw_body)
        except CosProtocolError as exc:
            raise XmlError("MalformedXML", exc.message) from None
        if not listed:
            raise XmlError("MalformedXML", "no Part in CompleteMultipartUpload")
        numbers = [p.part_number for p in listed]
        if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
            raise XmlError("InvalidPartOrder", "parts must be listed in ascending order of PartNumber")
        if numbers != list(range(1, len(numbers) + 1)):
            raise XmlError("InvalidPart", "part numbers must be consecutive from 1")
        min_part = self.settings.min_part_size
        with state.lock:
            stored = dict(state.parts)
        for i, entry in enumerate(listed):
            have = stored.get(entry.part_number)
            if have is None or unquote_etag(entry.etag) != have.md5:
                raise XmlError("InvalidPart", f"part {entry.part_number} was not uploaded with that ETag")
            if i < len(listed) - 1 and have.size < min_part:
                raise XmlError(
                    "EntityTooSmall",
                    f"part {entry.part_number} has {have.size} bytes; every part "
                    f"but the last needs at least {min_part}",
                )
        parts = [stored[n] for n in numbers]
        assembled = self.tmp_dir / f"complete-{uuid.uuid4().hex}"
        try:
            assemble_parts([route.store.part_path(state, p.number) for p in parts], assembled)
            crc = format_crc64(crc64_fold((int(p.crc64), p.size) for p in parts))
            etag = multipart_etag([p.md5 for p in parts])
            md5_whole = ""  # a multipart object's MD5 is not its ETag; nothing answers it, never computed
            if route.store.upload(state.upload_id) is not state:
                raise XmlError("NoSuchUpload", "the upload was aborted meanwhile")
            route.store.commit_file(
                self._path(route.key),
                assembled,
                size=sum(p.size for p in parts),
                sha="",  # computed on first need (BucketStore.sha_of): only the JSON API answers it
                biz_attr="",
                md5=md5_whole,
                crc64=crc,
                etag=etag,
                content_type=state.content_type,
            )
        except FileNotFoundError:
            raise XmlError("NoSuchUpload", "the upload was aborted meanwhile") from None
        finally:
            assembled.unlink(missing_ok=True)
        route.store.discard_upload(state.upload_id)
        self.stats.completed()
        bucket = f"{route.cfg.bucket}-{route.cfg.appid}"
        result = CompletedUpload(
            f"http://{bucket}.cos.{self.settings.xml_region}.myqcloud.com/{route.key}", bucket, route.key, etag
        )
        return self._xml_reply(
            200, COMPLETE_KEEPALIVE + result.render(declaration=False), [("x-cos-hash-crc64ecma", crc)]
        )

    def xml_abort(self, route: XmlRoute) -> Reply:
        state = self._upload_of(route)
        route.store.discard_upload(state.upload_id)
        return self._xml_reply(204)

    def xml_list_uploads(self, route: XmlRoute) -> Reply:
        q = route.query
        prefix = q.get("prefix", "")
        delimiter = q.get("delimiter") or None
        key_marker, id_marker = q.get("key-marker", ""), q.get("upload-id-marker", "")
        max_uploads = _int_param(q, "max-uploads", LIST_MAX, 1, LIST_MAX)
        encoding = _encoding(q)
        uploads = sorted(
            (u for u in route.store.uploads() if u.path[1:].startswith(prefix)),
            key=lambda u: (u.path[1:].encode("utf-8"), u.initiated, u.upload_id),
        )
        items: list[tuple[str, UploadState | None]] = []
        seen: set[str] = set()
        passed_marker = False  # within key-marker's key: the uploads after upload-id-marker, in listing order
        for u in uploads:
            key = u.path[1:]
            if key_marker:
                kb, mb = key.encode("utf-8"), key_marker.encode("utf-8")
                if kb < mb:
                    continue
                if kb == mb and not passed_marker:
                    passed_marker = bool(id_marker) and u.upload_id == id_marker
                    continue
            if delimiter and (cut := key.find(delimiter, len(prefix))) >= 0:
                common = key[: cut + len(delimiter)]
                if common not in seen:
                    seen.add(common)
                    items.append((common, None))
                continue
            items.append((key, u))
        page, truncated = items[:max_uploads], len(items) > max_uploads
        last = page[-1] if page else None
        listing = UploadListing(
            bucket=f"{route.cfg.bucket}-{route.cfg.appid}",
            prefix=prefix,
            delimiter=delimiter,
            key_marker=key_marker,
            upload_id_marker=id_marker,
            max_uploads=max_uploads,
            is_truncated=truncated,
            next_key_marker=last[0] if truncated and last else "",
            next_upload_id_marker=last[1].upload_id if truncated and last and last[1] else "",
            uploads=tuple(
                UploadEntry(k, u.upload_id, _iso(u.initiated), initiator_id=route.cfg.appid)
                for k, u in page
                if u is not None
            ),
            common_prefixes=tuple(k for k, u in page if u is None),
            encoding_type=encoding,
        )
        return self._xml_reply(200, listing.render())


def xml_data_hashers(op: str) -> dict[str, Any]:
    """The digests computed while an XML data body arrives: MD5 (ETag) and CRC-64 (header) always; the SHA-1
    (JSON ``stat``, instant upload) only for PutObject - a part's SHA-1 would serve nothing, the whole
    object's is computed once at Complete (:func:`assemble_parts`)."""
    hashers: dict[str, Any] = {"md5": hashlib.md5(), "crc64": Crc64()}
    if op == "PutObject":
        hashers["sha1"] = hashlib.sha1()
    return hashers


def assemble_parts(sources: list[Path], target: Path) -> None:
    """Concatenate the part files into ``target``, in the kernel (``os.copy_file_range``: the bytes never
    pass through Python), or with one reused buffer where the filesystem does not support it. Nothing is
    hashed: the object's ETag and CRC-64 are folded from the parts', its SHA-1 (JSON API only) is computed
    on first need (:meth:`BucketStore.sha_of`)."""
    buffer: list[memoryview] = []  # allocated only if the kernel copy fails
    kernel_copy = hasattr(os, "copy_file_range")
    out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        pos = 0
        for source in sources:
            src = os.open(source, os.O_RDONLY)
            try:
                size = os.fstat(src).st_size
                done = 0
                if kernel_copy:
                    try:
                        while done < size:
                            n = os.copy_file_range(src, out, size - done, done, pos + done)
                            if n <= 0:
                                raise OSError("copy_file_range made no progress")
                            done += n
                    except OSError:
                        kernel_copy = False  # e.g. EXDEV, ENOSYS: through the buffer from here on
                if done < size and not buffer:
                    buffer.append(memoryview(bytearray(CHUNK)))
                while done < size and (n := os.preadv(src, buffer, done)):
                    written = 0
                    while written < n:
                        written += os.pwrite(out, buffer[0][written:n], pos + done + written)
                    done += n
                pos += size
            finally:
                os.close(src)
        os.ftruncate(out, pos)
    finally:
        os.close(out)
