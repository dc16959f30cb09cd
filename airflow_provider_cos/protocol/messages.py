"""Request/response value types shared by the operations, the engine and the emulator (all frozen)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from airflow_provider_cos.protocol.errors import CosProtocolError, error_from_envelope
from airflow_provider_cos.protocol.multipart import BoundaryFactory, EncodedForm, encode_form, random_boundary
from airflow_provider_cos.protocol.paths import (
    ApiVersion,
    ObjectUrls,
    download_url,
    fileid,
    normalize_endpoint,
    resource_url,
)

#: ``download``: a multi-effect signature bound to the object path, sent as ``?sign=`` on the download URL.
SignatureKind = Literal["multi", "once", "download"]
BodyFormat = Literal["none", "multipart", "json"]
#: The name of the binary multipart field. Servers accept any case (``fileContent``); we send this.
FILE_FIELD = "filecontent"


@dataclass(frozen=True)
class CosTarget:
    """Where requests go: endpoint base URL (no ``/files/vN``), generation, appid, bucket."""

    endpoint: str
    api_version: ApiVersion
    appid: str
    bucket: str
    #: The bucket's region (``xml`` addresses ``<bucket>-<appid>.cos.<region>.myqcloud.com``); v1/v2 ignore it.
    region: str | None = None
    #: ``xml``: a domain bound to ``bucket`` (``Host``, signature and URLs use it instead of the virtual host;
    #: a call for another bucket does not, see ``transfer.upload.with_bucket``).
    custom_domain: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "endpoint", normalize_endpoint(self.endpoint))

    def url(self, path: str) -> str:
        return resource_url(self.endpoint, self.api_version, self.appid, self.bucket, path)

    def fileid(self, path: str) -> str:
        return fileid(self.appid, self.bucket, path)

    def download_url(self, path: str) -> str:
        return download_url(self.endpoint, self.api_version, self.appid, self.bucket, path)


@dataclass(frozen=True)
class CosRequest:
    """A protocol step, before signing and encoding: pure data, no I/O."""

    op: str
    method: Literal["GET", "POST"]
    path: str
    query: tuple[tuple[str, str], ...] = ()
    fields: tuple[tuple[str, str], ...] = ()
    body_format: BodyFormat = "none"
    signature: SignatureKind = "multi"
    file_field: str | None = None
    data_len: int = 0
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class HttpRequest:
    """Bytes-level request ready for any transport. ``body`` holds the binary part if any."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None = field(default=None, repr=False)


def encode_request(
    target: CosTarget,
    request: CosRequest,
    signature: str,
    data: bytes | bytearray | memoryview | None = None,
    *,
    boundary_factory: BoundaryFactory = random_boundary,
) -> HttpRequest:
    """Encode a :class:`CosRequest` into an :class:`HttpRequest` with the ``Authorization`` header."""
    url, headers = _url_and_headers(target, request, signature)
    body: bytes | None = None
    if request.body_format == "json":
        headers["Content-Type"] = "application/json"
        body = json.dumps(dict(request.fields), separators=(",", ":")).encode("utf-8")
    elif request.body_format == "multipart":
        if (data is None) != (request.file_field is None):
            raise ValueError(f"op {request.op}: binary data given iff a file field is declared")
        if data is not None and memoryview(data).nbytes != request.data_len:
            raise ValueError(f"op {request.op}: data length {memoryview(data).nbytes} != {request.data_len}")
        form = encode_form(request.fields, request.file_field, boundary_factory=boundary_factory)
        headers["Content-Type"] = form.content_type
        body = form.body(data)
    return HttpRequest(request.method, url, headers, body)


def encode_request_head(
    target: CosTarget,
    request: CosRequest,
    signature: str,
    *,
    boundary_factory: BoundaryFactory = random_boundary,
) -> tuple[HttpRequest, EncodedForm]:
    """Encode a multipart request with a binary part, without its body.

    Returns the :class:`HttpRequest` (``body`` is ``None``) and the :class:`EncodedForm` whose
    ``prefix + data + suffix`` is the body :func:`encode_request` would build for the same boundary, so
    that a caller can place the data itself (e.g. read straight into a reused buffer, see
    :meth:`EncodedForm.frame_into`) instead of joining a copy.
    """
    if request.body_format != "multipart" or request.file_field is None:
        raise ValueError(f"op {request.op}: encode_request_head needs a multipart request with a file field")
    url, headers = _url_and_headers(target, request, signature)
    form = encode_form(request.fields, request.file_field, boundary_factory=boundary_factory)
    headers["Content-Type"] = form.content_type
    return HttpRequest(request.method, url, headers, None), form


def _url_and_headers(target: CosTarget, request: CosRequest, signature: str) -> tuple[str, dict[str, str]]:
    from urllib.parse import urlencode

    if request.signature == "download":  # the download form: its own URL, the signature in the query
        url = target.download_url(request.path) + "?" + urlencode((*request.query, ("sign", signature)))
        return url, dict(request.headers)
    url = target.url(request.path)
    if request.query:
        url += "?" + urlencode(request.query)
    return url, {"Authorization": signature, "Accept": "application/json", **dict(request.headers)}


def parse_envelope(status: int, body: bytes, *, op: str, path: str | None = None) -> dict[str, Any]:
    """Return the ``data`` object of a successful answer, or raise the typed error it carries.

    Non-JSON answers become :class:`CosServerError` for 5xx and :class:`CosProtocolError` otherwise
    (both retryable: a broken proxy or a truncated answer is transient).
    """
    try:
        envelope = json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, ValueError):
        envelope = None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("code"), int):
        if status >= 500:
            raise error_from_envelope(
                -181, f"HTTP {status} without a COS envelope", status, operation=op, path=path
            ) from None
        snippet = body[:80].decode("utf-8", "replace") if body else "(empty body)"
        raise CosProtocolError(
            f"answer is not a COS JSON envelope: {snippet!r}", status=status, operation=op, path=path
        )
    code: int = envelope["code"]
    message = str(envelope.get("message", ""))
    if code != 0:
        raise error_from_envelope(code, message, status, operation=op, path=path)
    if status != 200:
        raise error_from_envelope(
            -181 if status >= 500 else -61, f"HTTP {status} with code 0", status, operation=op, path=path
        )
    data = envelope.get("data")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CosProtocolError("envelope 'data' is not an object", status=status, operation=op, path=path)
    return data


def urls_from_data(data: Mapping[str, Any], *, op: str) -> ObjectUrls | None:
    """The object URLs if the answer carries them (v3.1 servers: ``url`` only; v3.3/v4: ``access_url``)."""
    if not data.get("access_url") and not data.get("url"):
        return None
    return ObjectUrls(
        resource_path=str(data.get("resource_path", "")),
        access_url=str(data.get("access_url", "")),
        source_url=str(data.get("source_url", "")),
        url=str(data.get("url", "")),
        preview_url=str(data["preview_url"]) if data.get("preview_url") else None,
    )


def require_int(data: Mapping[str, Any], key: str, *, op: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or value is None:
        raise CosProtocolError(f"answer lacks integer field {key!r}", operation=op)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise CosProtocolError(f"answer field {key!r} is not an integer: {value!r}", operation=op) from None


def require_str(data: Mapping[str, Any], key: str, *, op: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise CosProtocolError(f"answer lacks string field {key!r}", operation=op)
    return value


# ------------------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class InstantUpload:
    """Init answered with the object's URLs: the content was already there (秒传), nothing to send."""

    urls: ObjectUrls


@dataclass(frozen=True)
class SlicePart:
    offset: int
    datalen: int


@dataclass(frozen=True)
class SliceSession:
    """An open slice upload as the server describes it.

    ``offset`` is where v1 says to continue; ``received`` lists the slices v2's ``upload_slice_list``
    reports as stored; ``serial_upload`` means one slice at a time, in order.
    """

    session: str
    slice_size: int
    offset: int = 0
    serial_upload: bool = False
    filesize: int | None = None
    sha: str | None = None
    received: tuple[SlicePart, ...] = ()


@dataclass(frozen=True)
class SliceAck:
    """A data request's answer; ``urls`` is set when it completed the object (v1)."""

    session: str
    offset: int
    datalen: int | None = None
    datamd5: str | None = None
    urls: ObjectUrls | None = None


@dataclass(frozen=True)
class StatInfo:
    """``op=stat`` of a file or folder, with the fields the server reported."""

    name: str
    is_folder: bool
    filesize: int | None
    filelen: int | None
    sha: str | None
    ctime: int | None
    mtime: int | None
    access_url: str | None
    source_url: str | None
    preview_url: str | None
    biz_attr: str | None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def complete(self) -> bool:
        """True for a file whose stored length equals its declared size."""
        return not self.is_folder and self.filesize is not None and self.filelen == self.filesize

    def as_dict(self) -> dict[str, Any]:
        return dict(self.raw)


@dataclass(frozen=True)
class ListPage:
    infos: tuple[StatInfo, ...]
    context: str
    listover: bool
