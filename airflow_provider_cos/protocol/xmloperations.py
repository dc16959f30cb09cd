"""The COS XML API (the third generation, ``xml``) as pure ``prepare_*`` / ``process_*`` pairs.

``prepare_*`` returns an :class:`XmlRequest` (method, decoded key, parameters, headers, small XML
body; no signature, no URL); :func:`encode_xml_request` places it on an :class:`XmlTarget` and signs
it. ``process_*`` takes the status, the response headers and the body and returns a typed result or
raises the typed :class:`CosError` that :data:`errors.XML_ERROR_TABLE` says. No sockets: the same
pairs serve the engine, the hook and the emulator's tests.

Paging (GET Bucket, ListParts, ListMultipartUploads) is one request per page: the results carry the
markers of the next request (``next_page_marker()``), and the caller loops.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote, urlsplit

from airflow_provider_cos.protocol.crc64 import CRC64_HEADER, parse_crc64
from airflow_provider_cos.protocol.errors import (
    CosConfigError,
    CosIntegrityError,
    CosInvalidRequestError,
    CosPathError,
    CosProtocolError,
)
from airflow_provider_cos.protocol.messages import HttpRequest
from airflow_provider_cos.protocol.xmlmessages import (
    CompletedUpload,
    CompletePart,
    Headers,
    InitiatedUpload,
    ObjectListing,
    PartListing,
    UploadListing,
    error_from_response,
    header,
    parse_complete_result,
    parse_initiate,
    parse_object_listing,
    parse_part_listing,
    parse_upload_listing,
    render_complete_request,
)
from airflow_provider_cos.protocol.xmlsigning import XmlSigner

XmlMethod = Literal["GET", "PUT", "POST", "DELETE", "HEAD"]

MAX_KEY_BYTES = 850
MIN_PART_NUMBER, MAX_PART_NUMBER = 1, 10000
MIN_PART_SIZE = 1024 * 1024
MAX_PART_SIZE = MAX_OBJECT_SIZE = 5 * 1024**3
LIST_MAX = 1000
#: Headers a caller may pass to PutObject / InitiateMultipartUpload (stored with the object).
OBJECT_HEADER_NAMES = frozenset(
    {
        "cache-control",
        "content-disposition",
        "content-encoding",
        "content-type",
        "expires",
        "x-cos-storage-class",
        "x-cos-acl",
        "x-cos-tagging",
    }
)
_BUCKET = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-[0-9]+$")
_REGION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]*[A-Za-z0-9]$")
_DOMAIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?$")
_FORBIDDEN_KEY_CHARS = frozenset("\x18\x19\x1a\x1b")


def validate_key(key: str) -> str:
    """An object key as COS accepts it (§1.4), or :class:`CosPathError` naming the rule broken."""
    if not key:
        raise CosPathError("object key is empty")
    if key[0] in "/\\":
        raise CosPathError(f"object key must not start with '/' or '\\': {key[:40]!r}", path=key)
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise CosPathError(f"object key exceeds {MAX_KEY_BYTES} bytes in UTF-8", path=key[:60])
    lowered = key.lower()
    if "%0a" in lowered or "%0d" in lowered or _FORBIDDEN_KEY_CHARS & set(key):
        raise CosPathError("object key contains %0a, %0d or a control character 24-27", path=key[:60])
    return key


def encode_key(key: str) -> str:
    """The request-target path of a key, as the SDK writes it (``quote(safe='/-_.~')``, ``./`` kept)."""
    return "/" + quote(key.encode("utf-8"), safe="/-_.~").replace("./", ".%2F")


@dataclass(frozen=True)
class XmlTarget:
    """Where XML requests go: ``<bucket>-<appid>.cos.<region>.<domain>``, or an explicit endpoint.

    ``endpoint`` (``http://127.0.0.1:8080``, a proxy) replaces the scheme and address of the URL; the
    ``Host`` header stays the bucket's virtual host, which the emulator reads. ``custom_domain`` (a domain
    bound to the bucket, e.g. a CDN's) replaces the virtual host itself: ``Host``, signature and URL.
    """

    bucket: str
    region: str
    endpoint: str | None = None
    scheme: Literal["https", "http"] = "https"
    domain: str = "myqcloud.com"
    custom_domain: str | None = None

    def __post_init__(self) -> None:
        if not _BUCKET.match(self.bucket) or len(self.bucket) > 63:
            raise CosConfigError(f"bucket must be '<name>-<appid>' (lowercase, digits, '-'), got {self.bucket!r}")
        if not _REGION.match(self.region):
            raise CosConfigError(f"region is not a COS region name: {self.region!r}")
        if self.custom_domain is not None and not _DOMAIN.match(self.custom_domain):
            raise CosConfigError(
                f"custom domain must be a host name such as files.example.com, got {self.custom_domain!r}"
            )
        if self.endpoint is not None:
            split = urlsplit(self.endpoint if "://" in self.endpoint else "http://" + self.endpoint)
            if split.scheme not in ("http", "https") or not split.netloc or split.path not in ("", "/"):
                raise CosConfigError(f"endpoint must be http(s)://host[:port], got {self.endpoint!r}")
            object.__setattr__(self, "endpoint", f"{split.scheme}://{split.netloc}")

    @property
    def host(self) -> str:
        return self.custom_domain or f"{self.bucket}.cos.{self.region}.{self.domain}"

    def url(self, request: XmlRequest) -> str:
        base = self.endpoint or f"{self.scheme}://{self.host}"
        query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in request.params)
        return base + request.path + ("?" + query if query else "")


@dataclass(frozen=True)
class XmlRequest:
    """One XML API call before addressing and signing.

    ``key`` is ``None`` for bucket calls (path ``/``). ``body`` holds small XML bodies; a data-carrying
    call (PutObject, UploadPart) has ``data_len`` and the caller supplies the bytes.
    """

    op: str
    method: XmlMethod
    key: str | None
    params: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = field(default=None, repr=False)
    data_len: int | None = None

    @property
    def uri_pathname(self) -> str:
        """The decoded path that is signed."""
        return "/" if self.key is None else "/" + self.key

    @property
    def path(self) -> str:
        """The encoded request-target path."""
        return "/" if self.key is None else encode_key(self.key)

    @property
    def content_length(self) -> int | None:
        """What ``Content-Length`` must say: the body's or data's length; ``0`` for a body-less write."""
        if self.body is not None:
            return len(self.body)
        if self.data_len is not None:
            return self.data_len
        return None if self.method in ("GET", "HEAD") else 0


def encode_xml_request(
    target: XmlTarget,
    request: XmlRequest,
    signer: XmlSigner,
    *,
    extra_headers: Mapping[str, str] | None = None,
) -> HttpRequest:
    """Address and sign ``request``: every parameter, ``host``, ``content-length`` and ``x-cos-*`` signed.

    ``extra_headers`` (e.g. ``x-cos-sdk-retry``, ``Content-MD5``) are added before signing. The body of a
    data call is not included (``HttpRequest.body`` is ``None``): the transport streams it.
    """
    headers: dict[str, str] = {"Host": target.host, **dict(request.headers), **(extra_headers or {})}
    length = request.content_length
    if length is not None:
        headers["Content-Length"] = str(length)
    signed = signer.sign_headers(request.method, request.uri_pathname, request.params, headers)
    return HttpRequest(request.method, target.url(request), signed, request.body)


def content_md5(data: bytes | bytearray | memoryview) -> str:
    """``Content-MD5``: base64 of the 16 raw MD5 bytes (not of the hex)."""
    return base64.b64encode(hashlib.md5(data).digest()).decode("ascii")


# ------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ObjectHead:
    """What HEAD (and GET) say about an object."""

    size: int
    etag: str
    last_modified: str
    content_type: str
    crc64: int | None
    metadata: Mapping[str, str] = field(default_factory=dict)
    storage_class: str = "STANDARD"


@dataclass(frozen=True)
class PutResult:
    etag: str
    crc64: int | None


@dataclass(frozen=True)
class UploadedPart:
    part_number: int
    etag: str
    crc64: int | None


@dataclass(frozen=True)
class ObjectData:
    """A GET answer: the bytes, where they sit in the object, and the object's head.

    ``crc64`` in ``head`` is the CRC of the whole object even for a range (§4.3).
    """

    data: bytes = field(repr=False)
    start: int
    end: int  # inclusive; start - 1 for an empty object
    total: int
    head: ObjectHead


@dataclass(frozen=True)
class CompleteResult:
    upload: CompletedUpload
    crc64: int | None


def _crc(headers: Headers, *, operation: str) -> int | None:
    value = header(headers, CRC64_HEADER)
    if value is None:
        return None
    try:
        return parse_crc64(value)
    except CosProtocolError as exc:
        exc.operation = operation
        raise


def check_crc64(expected: int | None, received: int | None, *, operation: str, path: str | None = None) -> None:
    """Raise :class:`CosIntegrityError` (retryable: resend) when the server's CRC differs from ours.

    A server that sent no CRC (objects older than the feature) is accepted.
    """
    if expected is not None and received is not None and expected != received:
        raise CosIntegrityError(
            f"{CRC64_HEADER} mismatch: sent {expected}, server computed {received}",
            operation=operation,
            path=path,
            retryable=True,
        )


def _ok(status: int, headers: Headers, body: bytes, expected: tuple[int, ...], *, op: str, path: str | None) -> None:
    if status not in expected:
        raise error_from_response(status, headers, body, operation=op, path=path)


def _require_header(headers: Headers, name: str, *, op: str, path: str | None) -> str:
    value = header(headers, name)
    if value is None or not value.strip():
        raise CosProtocolError(f"answer lacks header {name}", operation=op, path=path)
    return value.strip()


def _object_head(headers: Headers, *, op: str, path: str | None, size: int | None = None) -> ObjectHead:
    if size is None:
        raw = _require_header(headers, "Content-Length", op=op, path=path)
        if not raw.isdigit():
            raise CosProtocolError(f"Content-Length is not an integer: {raw!r}", operation=op, path=path)
        size = int(raw)
    meta = {k.lower()[len("x-cos-meta-") :]: v for k, v in headers if k.lower().startswith("x-cos-meta-")}
    return ObjectHead(
        size=size,
        etag=header(headers, "ETag") or "",
        last_modified=header(headers, "Last-Modified") or "",
        content_type=header(headers, "Content-Type") or "",
        crc64=_crc(headers, operation=op),
        metadata=meta,
        storage_class=header(headers, "x-cos-storage-class") or "STANDARD",
    )


def _object_headers(
    headers: Mapping[str, str] | None, metadata: Mapping[str, str] | None
) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for name, value in (headers or {}).items():
        if name.lower() not in OBJECT_HEADER_NAMES:
            raise CosConfigError(f"header {name!r} is not an object header ({', '.join(sorted(OBJECT_HEADER_NAMES))})")
        out.append((name, value))
    for name, value in (metadata or {}).items():
        if not name or "_" in name:
            raise CosConfigError(f"metadata name must be non-empty and without '_': {name!r}")
        out.append((f"x-cos-meta-{name}", value))
    return tuple(out)


def _limit(name: str, value: int) -> str:
    if not 1 <= value <= LIST_MAX:
        raise CosInvalidRequestError(f"{name} must be within 1..{LIST_MAX}, got {value!r}")
    return str(value)


def _part_number(part_number: int) -> str:
    if not MIN_PART_NUMBER <= part_number <= MAX_PART_NUMBER:
        raise CosInvalidRequestError(
            f"partNumber must be within {MIN_PART_NUMBER}..{MAX_PART_NUMBER}, got {part_number!r}"
        )
    return str(part_number)


def _upload_id(upload_id: str) -> str:
    if not upload_id:
        raise CosInvalidRequestError("uploadId is empty")
    return upload_id


class XmlDialect:
    """The operations of the XML API. Stateless; one shared instance :data:`XML`."""

    api_version = "xml"

    # ---- PutObject
    def prepare_put_object(
        self,
        key: str,
        data_len: int,
        *,
        content_md5: str | None = None,
        headers: Mapping[str, str] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> XmlRequest:
        if not 0 <= data_len <= MAX_OBJECT_SIZE:
            raise CosInvalidRequestError(f"PutObject body must be 0..{MAX_OBJECT_SIZE} bytes, got {data_len}")
        extra = (("Content-MD5", content_md5),) if content_md5 else ()
        return XmlRequest(
            "PutObject", "PUT", validate_key(key), headers=_object_headers(headers, metadata) + extra, data_len=data_len
        )

    def process_put_object(
        self, status: int, headers: Headers, body: bytes, *, key: str | None = None, crc64: int | None = None
    ) -> PutResult:
        op = "PutObject"
        _ok(status, headers, body, (200,), op=op, path=key)
        result = PutResult(etag=_require_header(headers, "ETag", op=op, path=key), crc64=_crc(headers, operation=op))
        check_crc64(crc64, result.crc64, operation=op, path=key)
        return result

    # ---- HeadObject
    def prepare_head_object(self, key: str) -> XmlRequest:
        return XmlRequest("HeadObject", "HEAD", validate_key(key))

    def process_head_object(self, status: int, headers: Headers, body: bytes, *, key: str | None = None) -> ObjectHead:
        op = "HeadObject"
        _ok(status, headers, body, (200,), op=op, path=key)
        return _object_head(headers, op=op, path=key)

    # ---- GetObject
    def prepare_get_object(self, key: str, *, start: int | None = None, end: int | None = None) -> XmlRequest:
        """A whole object, or the inclusive byte range ``start..end`` (``end=None``: to the end)."""
        if start is None:
            if end is not None:
                raise CosInvalidRequestError("a range needs a start")
            return XmlRequest("GetObject", "GET", validate_key(key))
        if start < 0 or (end is not None and end < start):
            raise CosInvalidRequestError(f"invalid byte range {start}-{end}")
        spec = f"bytes={start}-{'' if end is None else end}"
        return XmlRequest("GetObject", "GET", validate_key(key), headers=(("Range", spec),))

    def process_get_object(
        self, status: int, headers: Headers, body: bytes, *, key: str | None = None, start: int | None = None
    ) -> ObjectData:
        op = "GetObject"
        _ok(status, headers, body, (200, 206), op=op, path=key)
        length = _require_header(headers, "Content-Length", op=op, path=key)
        if not length.isdigit() or int(length) != len(body):
            raise CosProtocolError(f"received {len(body)} bytes, Content-Length says {length}", operation=op, path=key)
        if status == 200:
            if start not in (None, 0):
                raise CosProtocolError("asked for a range, got the whole object (200)", operation=op, path=key)
            head = _object_head(headers, op=op, path=key, size=len(body))
            return ObjectData(body, 0, len(body) - 1, len(body), head)
        content_range = _require_header(headers, "Content-Range", op=op, path=key)
        match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", content_range)
        if not match:
            raise CosProtocolError(f"Content-Range is not 'bytes a-b/n': {content_range!r}", operation=op, path=key)
        first, last, total = (int(g) for g in match.groups())
        if last - first + 1 != len(body) or (start is not None and first != start):
            raise CosProtocolError(
                f"Content-Range {content_range!r} does not match the request/body", operation=op, path=key
            )
        return ObjectData(body, first, last, total, _object_head(headers, op=op, path=key, size=total))

    # ---- DeleteObject
    def prepare_delete_object(self, key: str) -> XmlRequest:
        return XmlRequest("DeleteObject", "DELETE", validate_key(key))

    def process_delete_object(self, status: int, headers: Headers, body: bytes, *, key: str | None = None) -> None:
        _ok(status, headers, body, (200, 204), op="DeleteObject", path=key)

    # ---- GetBucket
    def prepare_get_bucket(
        self, *, prefix: str = "", delimiter: str = "", marker: str = "", max_keys: int = LIST_MAX
    ) -> XmlRequest:
        """One page of keys after ``marker``; always ``encoding-type=url`` (keys round-trip exactly)."""
        params = (
            ("prefix", prefix),
            ("delimiter", delimiter),
            ("marker", marker),
            ("max-keys", _limit("max-keys", max_keys)),
            ("encoding-type", "url"),
        )
        return XmlRequest("GetBucket", "GET", None, params=params)

    def process_get_bucket(self, status: int, headers: Headers, body: bytes) -> ObjectListing:
        _ok(status, headers, body, (200,), op="GetBucket", path=None)
        return parse_object_listing(body)

    # ---- InitiateMultipartUpload
    def prepare_initiate(
        self, key: str, *, headers: Mapping[str, str] | None = None, metadata: Mapping[str, str] | None = None
    ) -> XmlRequest:
        return XmlRequest(
            "InitiateMultipartUpload",
            "POST",
            validate_key(key),
            params=(("uploads", ""),),
            headers=_object_headers(headers, metadata),
        )

    def process_initiate(
        self, status: int, headers: Headers, body: bytes, *, key: str | None = None
    ) -> InitiatedUpload:
        _ok(status, headers, body, (200,), op="InitiateMultipartUpload", path=key)
        return parse_initiate(body)

    # ---- UploadPart
    def prepare_upload_part(
        self, key: str, *, upload_id: str, part_number: int, data_len: int, content_md5: str | None = None
    ) -> XmlRequest:
        if not 0 <= data_len <= MAX_PART_SIZE:
            raise CosInvalidRequestError(f"a part must be 0..{MAX_PART_SIZE} bytes, got {data_len}")
        extra = (("Content-MD5", content_md5),) if content_md5 else ()
        return XmlRequest(
            "UploadPart",
            "PUT",
            validate_key(key),
            params=(("partNumber", _part_number(part_number)), ("uploadId", _upload_id(upload_id))),
            headers=extra,
            data_len=data_len,
        )

    def process_upload_part(
        self,
        status: int,
        headers: Headers,
        body: bytes,
        *,
        key: str | None = None,
        part_number: int,
        crc64: int | None = None,
    ) -> UploadedPart:
        op = "UploadPart"
        _ok(status, headers, body, (200,), op=op, path=key)
        part = UploadedPart(part_number, _require_header(headers, "ETag", op=op, path=key), _crc(headers, operation=op))
        check_crc64(crc64, part.crc64, operation=op, path=key)
        return part

    # ---- ListParts
    def prepare_list_parts(
        self, key: str, *, upload_id: str, part_number_marker: int = 0, max_parts: int = LIST_MAX
    ) -> XmlRequest:
        if part_number_marker < 0:
            raise CosInvalidRequestError(f"part-number-marker must be >= 0, got {part_number_marker}")
        params = (
            ("uploadId", _upload_id(upload_id)),
            ("part-number-marker", str(part_number_marker)),
            ("max-parts", _limit("max-parts", max_parts)),
            ("encoding-type", "url"),
        )
        return XmlRequest("ListParts", "GET", validate_key(key), params=params)

    def process_list_parts(self, status: int, headers: Headers, body: bytes, *, key: str | None = None) -> PartListing:
        _ok(status, headers, body, (200,), op="ListParts", path=key)
        return parse_part_listing(body)

    # ---- CompleteMultipartUpload
    def prepare_complete(self, key: str, *, upload_id: str, parts: Sequence[CompletePart]) -> XmlRequest:
        """Parts must be ``1..N`` ascending, as COS requires (``InvalidPart`` / ``InvalidPartOrder``)."""
        numbers = [p.part_number for p in parts]
        if numbers != list(range(1, len(numbers) + 1)):
            raise CosInvalidRequestError(f"Complete needs parts 1..N in order, got {numbers[:10]}...")
        if len(numbers) > MAX_PART_NUMBER:
            raise CosInvalidRequestError(f"at most {MAX_PART_NUMBER} parts, got {len(numbers)}")
        return XmlRequest(
            "CompleteMultipartUpload",
            "POST",
            validate_key(key),
            params=(("uploadId", _upload_id(upload_id)),),
            body=render_complete_request(parts),
        )

    def process_complete(
        self, status: int, headers: Headers, body: bytes, *, key: str | None = None, crc64: int | None = None
    ) -> CompleteResult:
        """The result, or the error COS put inside a 200 after keep-alive whitespace.

        ``crc64`` is the whole-object CRC the client folded from its parts (:func:`crc64.crc64_fold`).
        """
        op = "CompleteMultipartUpload"
        _ok(status, headers, body, (200,), op=op, path=key)
        upload = parse_complete_result(status, body, headers, path=key)
        result = CompleteResult(upload, _crc(headers, operation=op))
        check_crc64(crc64, result.crc64, operation=op, path=key)
        return result

    # ---- AbortMultipartUpload
    def prepare_abort(self, key: str, *, upload_id: str) -> XmlRequest:
        return XmlRequest(
            "AbortMultipartUpload", "DELETE", validate_key(key), params=(("uploadId", _upload_id(upload_id)),)
        )

    def process_abort(self, status: int, headers: Headers, body: bytes, *, key: str | None = None) -> None:
        _ok(status, headers, body, (200, 204), op="AbortMultipartUpload", path=key)

    # ---- ListMultipartUploads
    def prepare_list_uploads(
        self,
        *,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        max_uploads: int = LIST_MAX,
    ) -> XmlRequest:
        params = (
            ("uploads", ""),
            ("prefix", prefix),
            ("delimiter", delimiter),
            ("key-marker", key_marker),
            ("upload-id-marker", upload_id_marker),
            ("max-uploads", _limit("max-uploads", max_uploads)),
            ("encoding-type", "url"),
        )
        return XmlRequest("ListMultipartUploads", "GET", None, params=params)

    def process_list_uploads(self, status: int, headers: Headers, body: bytes) -> UploadListing:
        _ok(status, headers, body, (200,), op="ListMultipartUploads", path=None)
        return parse_upload_listing(body)


XML = XmlDialect()
