"""XML API bodies: one parser and one renderer per document, shared by the client and the emulator.

Parsing goes through ``defusedxml`` (no DTDs, no entity expansion, no external references): a hostile
or broken proxy cannot make either side expand entities. Leading whitespace is stripped first, because
COS keeps a slow Complete alive by sending spaces before the result (COS_XML_API.md §5.5), and
namespaces are ignored (``CompleteMultipartUploadResult`` carries one). Renderers write the documents
as COS does (``&quot;`` inside ETags, ``EncodingType`` only when requested) and never a declaration
after whitespace (§10 Q2).

Also here: the ``<Error>`` body and its mapping into the :mod:`errors` hierarchy, and the ETag rules.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as DefusedET
from defusedxml import DefusedXmlException

from airflow_provider_cos.protocol.errors import CosError, CosProtocolError, error_from_xml

XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
#: The declaration the official SDK writes (minidom), byte for byte, without a newline.
SDK_XML_DECLARATION = b'<?xml version="1.0" encoding="utf-8"?>'
#: The namespace COS puts on CompleteMultipartUploadResult.
COMPLETE_NAMESPACE = "http://www.qcloud.com/document/product/436/7751"
_WHITESPACE = b" \t\r\n"

# ------------------------------------------------------------------------------------------- basics


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_xml(body: bytes, *, operation: str | None = None, path: str | None = None) -> Element:
    """The root element of ``body`` (leading whitespace allowed), or :class:`CosProtocolError`.

    A document with a DTD or entity declarations is refused and not retryable; unparseable or empty
    text is retryable (a truncated answer or a broken proxy is transient).
    """
    text = body.lstrip(_WHITESPACE)
    if not text:
        raise CosProtocolError("empty XML body", operation=operation, path=path)
    try:
        root: Element = DefusedET.fromstring(text, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise CosProtocolError(
            f"XML body refused ({type(exc).__name__}): DTDs and entities are not accepted",
            operation=operation,
            path=path,
            retryable=False,
        ) from None
    except Exception as exc:  # xml.etree.ElementTree.ParseError and friends
        snippet = text[:60].decode("utf-8", "replace")
        raise CosProtocolError(
            f"XML body does not parse ({exc}): {snippet!r}", operation=operation, path=path
        ) from None
    return root


def _children(element: Element, name: str) -> list[Element]:
    return [child for child in element if _local(child.tag) == name]


def _text(element: Element, name: str, default: str | None = None) -> str | None:
    for child in element:
        if _local(child.tag) == name:
            return child.text or ""
    return default


def _require(element: Element, name: str, *, operation: str) -> str:
    value = _text(element, name)
    if value is None:
        raise CosProtocolError(f"<{_local(element.tag)}> lacks <{name}>", operation=operation)
    return value


def _int(element: Element, name: str, *, operation: str, default: int | None = None) -> int:
    value = _text(element, name)
    if value is None or value.strip() == "":
        if default is not None:
            return default
        raise CosProtocolError(f"<{_local(element.tag)}> lacks <{name}>", operation=operation)
    try:
        return int(value.strip())
    except ValueError:
        raise CosProtocolError(f"<{name}> is not an integer: {value[:30]!r}", operation=operation) from None


def _bool(element: Element, name: str) -> bool:
    return (_text(element, name) or "").strip().lower() == "true"


def _url_encoded(element: Element) -> bool:
    """True when the document says its keys are URL-encoded (EncodingType / Encoding-type / Encoding-Type)."""
    for child in element:
        if _local(child.tag).lower().replace("-", "") == "encodingtype":
            return (child.text or "").strip().lower() == "url"
    return False


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _el(name: str, value: str | int | None) -> str:
    if value is None:
        return ""
    text = str(value)
    return f"<{name}>{_escape(text)}</{name}>" if text != "" else f"<{name}/>"


def _doc(root: str, inner: Iterable[str], *, declaration: bool = True, xmlns: str | None = None) -> bytes:
    attr = f' xmlns="{xmlns}"' if xmlns else ""
    body = f"<{root}{attr}>{''.join(inner)}</{root}>".encode()
    return (XML_DECLARATION if declaration else b"") + body


def _enc(value: str, url: bool) -> str:
    return quote(value.encode("utf-8"), safe="/-_.~") if url else value


def _dec(value: str | None, url: bool) -> str:
    if value is None:
        return ""
    return unquote(value) if url else value


# ------------------------------------------------------------------------------------------- headers

Headers = Sequence[tuple[str, str]]


def header(headers: Headers, name: str) -> str | None:
    """Case-insensitive lookup of the first header called ``name``."""
    lower = name.lower()
    for key, value in headers:
        if key.lower() == lower:
            return value
    return None


# ------------------------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class ErrorBody:
    """An ``<Error>`` document (§3.2)."""

    code: str
    message: str
    resource: str = ""
    request_id: str = ""
    trace_id: str = ""

    def render(self) -> bytes:
        return _doc(
            "Error",
            [
                _el("Code", self.code),
                _el("Message", self.message),
                _el("Resource", self.resource),
                _el("RequestId", self.request_id),
                _el("TraceId", self.trace_id),
            ],
        )

    def render_after_whitespace(self) -> bytes:
        """The form that follows keep-alive spaces in a Complete 200: no declaration (§10 Q2)."""
        return _doc(
            "Error",
            [
                _el("Code", self.code),
                _el("Message", self.message),
                _el("Resource", self.resource),
                _el("RequestId", self.request_id),
                _el("TraceId", self.trace_id),
            ],
            declaration=False,
        )


def parse_error_body(body: bytes) -> ErrorBody | None:
    """The ``<Error>`` in ``body``, or ``None`` when the body is empty, not XML, or another document."""
    if not body.strip(_WHITESPACE):
        return None
    try:
        root = parse_xml(body)
    except CosProtocolError:
        return None
    if _local(root.tag) != "Error":
        return None
    return ErrorBody(
        code=(_text(root, "Code") or "").strip(),
        message=_text(root, "Message") or "",
        resource=_text(root, "Resource") or "",
        request_id=_text(root, "RequestId") or "",
        trace_id=_text(root, "TraceId") or "",
    )


def error_from_response(
    status: int,
    headers: Headers,
    body: bytes,
    *,
    operation: str | None = None,
    path: str | None = None,
) -> CosError:
    """The typed error of a failed answer: the ``<Error>`` body's code if any, else the status (HEAD)."""
    parsed = parse_error_body(body)
    request_id = header(headers, "x-cos-request-id")
    if parsed is not None and parsed.code:
        return error_from_xml(
            parsed.code,
            parsed.message,
            status,
            operation=operation,
            path=path,
            request_id=parsed.request_id or request_id,
        )
    return error_from_xml(None, None, status, operation=operation, path=path, request_id=request_id)


# ------------------------------------------------------------------------------------------- ETags

_MD5_HEX = re.compile(r"^[0-9a-f]{32}$")
_MULTIPART_ETAG = re.compile(r"^[0-9a-f]{32}-[1-9][0-9]*$")


def quote_etag(md5_hex: str) -> str:
    """``"<hex>"``: the ETag of a simple object or a part (lowercase hex MD5 of its bytes)."""
    return f'"{md5_hex.lower()}"'


def unquote_etag(etag: str) -> str:
    """The ETag without surrounding quotes (COS sends them; a Complete body may omit them)."""
    value = etag.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value


def etag_of(data: bytes | bytearray | memoryview) -> str:
    return quote_etag(hashlib.md5(data).hexdigest())


def etag_matches_md5(etag: str, md5_hex: str) -> bool:
    """True when ``etag`` is the quoted (or bare) MD5 ``md5_hex``; multipart ETags never match."""
    return unquote_etag(etag).lower() == md5_hex.lower()


def is_md5_etag(etag: str) -> bool:
    return bool(_MD5_HEX.match(unquote_etag(etag)))


def multipart_etag(part_md5_hex: Sequence[str]) -> str:
    """The emulator's multipart ETag: S3's ``"md5(concat(binary part MD5s))-N"`` (COS's is opaque, §6.3).

    Clients must not verify a multipart ETag; they can only recognise its form (:func:`is_multipart_etag`).
    """
    if not part_md5_hex:
        raise ValueError("a multipart ETag needs at least one part")
    digest = hashlib.md5(b"".join(bytes.fromhex(unquote_etag(h)) for h in part_md5_hex)).hexdigest()
    return f'"{digest}-{len(part_md5_hex)}"'


def is_multipart_etag(etag: str) -> bool:
    return bool(_MULTIPART_ETAG.match(unquote_etag(etag)))


# ----------------------------------------------------------------------------------- Initiate


@dataclass(frozen=True)
class InitiatedUpload:
    bucket: str
    key: str
    upload_id: str

    def render(self) -> bytes:
        return _doc(
            "InitiateMultipartUploadResult",
            [_el("Bucket", self.bucket), _el("Key", self.key), _el("UploadId", self.upload_id)],
        )


def parse_initiate(body: bytes) -> InitiatedUpload:
    op = "InitiateMultipartUpload"
    root = parse_xml(body, operation=op)
    _expect(root, "InitiateMultipartUploadResult", op)
    upload_id = _require(root, "UploadId", operation=op).strip()
    if not upload_id:
        raise CosProtocolError("<UploadId> is empty", operation=op)
    return InitiatedUpload(bucket=_text(root, "Bucket") or "", key=_text(root, "Key") or "", upload_id=upload_id)


def _expect(root: Element, name: str, op: str) -> None:
    if _local(root.tag) != name:
        raise CosProtocolError(f"expected <{name}>, got <{_local(root.tag)}>", operation=op)


# --------------------------------------------------------------------------------- Complete


@dataclass(frozen=True)
class CompletePart:
    part_number: int
    etag: str


def render_complete_request(parts: Sequence[CompletePart]) -> bytes:
    """The Complete body, as the SDK sends it (declaration, no whitespace, ETags quoted as ``&quot;``)."""
    inner = [
        f"<Part>{_el('PartNumber', p.part_number)}{_el('ETag', quote_etag(unquote_etag(p.etag)))}</Part>" for p in parts
    ]
    return SDK_XML_DECLARATION + _doc("CompleteMultipartUpload", inner, declaration=False)


def parse_complete_request(body: bytes) -> list[CompletePart]:
    """The emulator's reading of a Complete body; malformed input raises :class:`CosProtocolError`.

    The caller answers ``MalformedXML`` for it. Order and consecutiveness are the caller's rules.
    """
    op = "CompleteMultipartUpload"
    root = parse_xml(body, operation=op)
    _expect(root, "CompleteMultipartUpload", op)
    parts = []
    for element in _children(root, "Part"):
        number = _int(element, "PartNumber", operation=op)
        parts.append(CompletePart(number, unquote_etag(_require(element, "ETag", operation=op))))
    if not parts:
        raise CosProtocolError("<CompleteMultipartUpload> lists no <Part>", operation=op)
    return parts


@dataclass(frozen=True)
class CompletedUpload:
    location: str
    bucket: str
    key: str
    etag: str

    def render(self, *, declaration: bool = True) -> bytes:
        """``declaration=False`` for the form that follows keep-alive whitespace."""
        return _doc(
            "CompleteMultipartUploadResult",
            [_el("Location", self.location), _el("Bucket", self.bucket), _el("Key", self.key), _el("ETag", self.etag)],
            declaration=declaration,
            xmlns=COMPLETE_NAMESPACE,
        )


def parse_complete_result(
    status: int, body: bytes, headers: Headers = (), *, path: str | None = None
) -> CompletedUpload:
    """Complete's answer: a result, or an ``<Error>`` even inside a 200 (keep-alive merge, §5.5)."""
    op = "CompleteMultipartUpload"
    root = parse_xml(body, operation=op, path=path)
    if _local(root.tag) == "Error":
        raise error_from_response(status, headers, body, operation=op, path=path)
    _expect(root, "CompleteMultipartUploadResult", op)
    etag = _require(root, "ETag", operation=op).strip()
    if not etag:
        raise CosProtocolError("Complete result has an empty <ETag>", operation=op, path=path)
    return CompletedUpload(
        location=_text(root, "Location") or "",
        bucket=_text(root, "Bucket") or "",
        key=_text(root, "Key") or "",
        etag=etag,
    )


# ------------------------------------------------------------------------------ GET Bucket


@dataclass(frozen=True)
class ObjectEntry:
    key: str
    last_modified: str
    etag: str
    size: int
    storage_class: str = "STANDARD"
    owner_id: str = ""


@dataclass(frozen=True)
class ObjectListing:
    """One page of GET Bucket; ``next_marker`` is where the next page starts when ``is_truncated``."""

    name: str
    prefix: str
    marker: str
    max_keys: int
    delimiter: str | None
    is_truncated: bool
    next_marker: str
    contents: tuple[ObjectEntry, ...]
    common_prefixes: tuple[str, ...]
    encoding_type: str | None = None

    def render(self) -> bytes:
        url = self.encoding_type == "url"
        inner = [
            _el("Name", self.name),
            _el("EncodingType", self.encoding_type),
            _el("Prefix", _enc(self.prefix, url)),
            _el("Marker", _enc(self.marker, url)),
            _el("MaxKeys", self.max_keys),
            _el("Delimiter", None if self.delimiter is None else _enc(self.delimiter, url)),
            _el("IsTruncated", "true" if self.is_truncated else "false"),
        ]
        if self.is_truncated:
            inner.append(_el("NextMarker", _enc(self.next_marker, url)))
        inner += [f"<CommonPrefixes>{_el('Prefix', _enc(p, url))}</CommonPrefixes>" for p in self.common_prefixes]
        for entry in self.contents:
            owner = f"<Owner>{_el('ID', entry.owner_id)}{_el('DisplayName', entry.owner_id)}</Owner>"
            inner.append(
                f"<Contents>{_el('Key', _enc(entry.key, url))}{_el('LastModified', entry.last_modified)}"
                f"{_el('ETag', entry.etag)}{_el('Size', entry.size)}{owner}"
                f"{_el('StorageClass', entry.storage_class)}</Contents>"
            )
        return _doc("ListBucketResult", inner)

    def next_page_marker(self) -> str | None:
        """The marker of the next request, or ``None`` on the last page."""
        if not self.is_truncated:
            return None
        if self.next_marker:
            return self.next_marker
        last = max([*(c.key for c in self.contents), *self.common_prefixes], default="")
        return last or None


def parse_object_listing(body: bytes) -> ObjectListing:
    op = "GetBucket"
    root = parse_xml(body, operation=op)
    _expect(root, "ListBucketResult", op)
    url = _url_encoded(root)
    contents = tuple(
        ObjectEntry(
            key=_dec(_require(c, "Key", operation=op), url),
            last_modified=_text(c, "LastModified") or "",
            etag=_text(c, "ETag") or "",
            size=_int(c, "Size", operation=op),
            storage_class=_text(c, "StorageClass") or "STANDARD",
            owner_id=next((_text(o, "ID") or "" for o in _children(c, "Owner")), ""),
        )
        for c in _children(root, "Contents")
    )
    prefixes = tuple(
        _dec(_text(p, "Prefix"), url) for name in ("CommonPrefixes", "CommonPrefixs") for p in _children(root, name)
    )
    delimiter = _text(root, "Delimiter")
    return ObjectListing(
        name=_text(root, "Name") or "",
        prefix=_dec(_text(root, "Prefix"), url),
        marker=_dec(_text(root, "Marker"), url),
        max_keys=_int(root, "MaxKeys", operation=op, default=1000),
        delimiter=None if delimiter is None else _dec(delimiter, url),
        is_truncated=_bool(root, "IsTruncated"),
        next_marker=_dec(_text(root, "NextMarker"), url),
        contents=contents,
        common_prefixes=prefixes,
        encoding_type="url" if url else None,
    )


# ------------------------------------------------------------------------------- ListParts


@dataclass(frozen=True)
class PartEntry:
    part_number: int
    last_modified: str
    etag: str
    size: int


@dataclass(frozen=True)
class PartListing:
    bucket: str
    key: str
    upload_id: str
    part_number_marker: int
    max_parts: int
    is_truncated: bool
    next_part_number_marker: int
    parts: tuple[PartEntry, ...]
    storage_class: str = "Standard"
    encoding_type: str | None = None
    owner_id: str = ""
    initiator_id: str = ""

    def render(self) -> bytes:
        url = self.encoding_type == "url"
        inner = [
            _el("Bucket", self.bucket),
            _el("EncodingType", self.encoding_type or ""),
            _el("Key", _enc(self.key, url)),
            _el("UploadId", self.upload_id),
            f"<Owner>{_el('ID', self.owner_id)}{_el('DisplayName', self.owner_id)}</Owner>",
            _el("PartNumberMarker", self.part_number_marker),
            f"<Initiator>{_el('ID', self.initiator_id)}{_el('DisplayName', self.initiator_id)}</Initiator>",
        ]
        inner += [
            f"<Part>{_el('PartNumber', p.part_number)}{_el('LastModified', p.last_modified)}"
            f"{_el('ETag', p.etag)}{_el('Size', p.size)}</Part>"
            for p in self.parts
        ]
        if self.is_truncated:
            inner.append(_el("NextPartNumberMarker", self.next_part_number_marker))
        inner += [
            _el("StorageClass", self.storage_class),
            _el("MaxParts", self.max_parts),
            _el("IsTruncated", "true" if self.is_truncated else "false"),
        ]
        return _doc("ListPartsResult", inner)

    def next_page_marker(self) -> int | None:
        if not self.is_truncated:
            return None
        if self.next_part_number_marker:
            return self.next_part_number_marker
        return self.parts[-1].part_number if self.parts else None


def parse_part_listing(body: bytes) -> PartListing:
    op = "ListParts"
    root = parse_xml(body, operation=op)
    _expect(root, "ListPartsResult", op)
    url = _url_encoded(root)
    parts = tuple(
        PartEntry(
            part_number=_int(p, "PartNumber", operation=op),
            last_modified=_text(p, "LastModified") or "",
            etag=_require(p, "ETag", operation=op),
            size=_int(p, "Size", operation=op),
        )
        for p in _children(root, "Part")
    )
    truncated = _bool(root, "IsTruncated")
    return PartListing(
        bucket=_text(root, "Bucket") or "",
        key=_dec(_text(root, "Key"), url),
        upload_id=_text(root, "UploadId") or "",
        part_number_marker=_int(root, "PartNumberMarker", operation=op, default=0),
        max_parts=_int(root, "MaxParts", operation=op, default=1000),
        is_truncated=truncated,
        next_part_number_marker=_int(root, "NextPartNumberMarker", operation=op, default=0),
        parts=tuple(sorted(parts, key=lambda p: p.part_number)),
        storage_class=_text(root, "StorageClass") or "",
        encoding_type="url" if url else None,
        owner_id=next((_text(o, "ID") or "" for o in _children(root, "Owner")), ""),
        initiator_id=next((_text(i, "ID") or "" for i in _children(root, "Initiator")), ""),
    )


# ---------------------------------------------------------------------- ListMultipartUploads


@dataclass(frozen=True)
class UploadEntry:
    key: str
    upload_id: str
    initiated: str
    storage_class: str = "STANDARD"
    initiator_id: str = ""


@dataclass(frozen=True)
class UploadListing:
    bucket: str
    prefix: str
    delimiter: str | None
    key_marker: str
    upload_id_marker: str
    max_uploads: int
    is_truncated: bool
    next_key_marker: str
    next_upload_id_marker: str
    uploads: tuple[UploadEntry, ...]
    common_prefixes: tuple[str, ...] = ()
    encoding_type: str | None = None

    def render(self) -> bytes:
        url = self.encoding_type == "url"
        inner = [
            _el("Bucket", self.bucket),
            _el("Encoding-Type", self.encoding_type or ""),
            _el("KeyMarker", _enc(self.key_marker, url)),
            _el("UploadIdMarker", self.upload_id_marker),
            _el("NextKeyMarker", _enc(self.next_key_marker, url)),
            _el("NextUploadIdMarker", self.next_upload_id_marker),
            _el("MaxUploads", self.max_uploads),
            _el("IsTruncated", "true" if self.is_truncated else "false"),
            _el("Prefix", _enc(self.prefix, url)),
            _el("Delimiter", None if self.delimiter is None else _enc(self.delimiter, url)),
        ]
        for u in self.uploads:
            who = f"{_el('ID', u.initiator_id)}{_el('DisplayName', u.initiator_id)}"
            inner.append(
                f"<Upload>{_el('Key', _enc(u.key, url))}{_el('UploadId', u.upload_id)}"
                f"{_el('StorageClass', u.storage_class)}<Initiator>{who}</Initiator><Owner>{who}</Owner>"
                f"{_el('Initiated', u.initiated)}</Upload>"
            )
        inner += [f"<CommonPrefixes>{_el('Prefix', _enc(p, url))}</CommonPrefixes>" for p in self.common_prefixes]
        return _doc("ListMultipartUploadsResult", inner)

    def next_page_markers(self) -> tuple[str, str] | None:
        """``(key-marker, upload-id-marker)`` of the next request, or ``None`` on the last page."""
        if not self.is_truncated:
            return None
        if self.next_key_marker:
            return self.next_key_marker, self.next_upload_id_marker
        if self.uploads:
            return self.uploads[-1].key, self.uploads[-1].upload_id
        return None


def parse_upload_listing(body: bytes) -> UploadListing:
    op = "ListMultipartUploads"
    root = parse_xml(body, operation=op)
    _expect(root, "ListMultipartUploadsResult", op)
    url = _url_encoded(root)
    uploads = tuple(
        UploadEntry(
            key=_dec(_require(u, "Key", operation=op), url),
            upload_id=_text(u, "UploadId") or _text(u, "UploadID") or "",
            initiated=_text(u, "Initiated") or "",
            storage_class=_text(u, "StorageClass") or "STANDARD",
            initiator_id=next((_text(i, "ID") or "" for i in _children(u, "Initiator")), ""),
        )
        for u in _children(root, "Upload")
    )
    prefixes = tuple(
        _dec(_text(p, "Prefix"), url) for name in ("CommonPrefixes", "CommonPrefixs") for p in _children(root, name)
    )
    delimiter = _text(root, "Delimiter")
    return UploadListing(
        bucket=_text(root, "Bucket") or "",
        prefix=_dec(_text(root, "Prefix"), url),
        delimiter=None if delimiter is None else _dec(delimiter, url),
        key_marker=_dec(_text(root, "KeyMarker"), url),
        upload_id_marker=_text(root, "UploadIdMarker") or "",
        max_uploads=_int(root, "MaxUploads", operation=op, default=1000),
        is_truncated=_bool(root, "IsTruncated"),
        next_key_marker=_dec(_text(root, "NextKeyMarker"), url),
        next_upload_id_marker=_text(root, "NextUploadIdMarker") or "",
        uploads=uploads,
        common_prefixes=prefixes,
        encoding_type="url" if url else None,
    )
