"""Every COS JSON API operation as a pure ``prepare_*`` / ``process_*`` pair, for both generations.

``prepare_*`` returns a :class:`CosRequest` (no signature, no bytes); ``process_*`` takes the HTTP
status and body and returns a typed result or raises a typed :class:`CosError`. The transfer engine and
the hook glue these to ``requests``; the emulator's tests use them to speak to the emulator.

:class:`V1Dialect` is the ``/files/v1`` generation (single ``op=upload_slice``; completion on the slice
that fills the object; resume by re-init with ``session``). :class:`V2Dialect` is ``/files/v2``
(``upload_slice_init`` / ``_data`` / ``_finish`` / ``_list``, ``uploadparts``, ``serial_upload``, -4019).
Their differences are data (:class:`SliceOps`: op names, init fields, flow), not copied methods; the
engine picks its strategy from ``dialect.slice_ops.flow``. The XML generation is :mod:`xmloperations`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from airflow_provider_cos.protocol.errors import (
    SHA_MISMATCH,
    CosConfigError,
    CosIntegrityError,
    CosNotFoundError,
    CosProtocolError,
    CosSessionError,
)
from airflow_provider_cos.protocol.messages import (
    FILE_FIELD,
    CosRequest,
    InstantUpload,
    ListPage,
    SliceAck,
    SlicePart,
    SliceSession,
    StatInfo,
    parse_envelope,
    require_int,
    require_str,
    urls_from_data,
)
from airflow_provider_cos.protocol.paths import (
    ApiVersion,
    ObjectUrls,
    normalize_file_path,
    normalize_folder_path,
)
from airflow_provider_cos.protocol.sha1parts import UploadPart

#: Slice sizes the v2 documentation lists; the server may answer another one.
V2_SLICE_SIZES = (512 * 1024, 1024 * 1024, 2 * 1024 * 1024, 3 * 1024 * 1024)
#: v1 SDKs accepted 512 KiB..20 MiB.
V1_SLICE_RANGE = (512 * 1024, 20 * 1024 * 1024)
LIST_MAX = 199


def _flag(value: bool) -> str:
    return "1" if value else "0"


def _opt_int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return None if value is None else str(value)


def stat_from_data(data: Mapping[str, Any], name: str) -> StatInfo:
    """A stat answer or a list entry as :class:`StatInfo` (folders carry no file fields)."""
    is_folder = "filesize" not in data and "filelen" not in data and "sha" not in data
    return StatInfo(
        name=str(data.get("name", name)),
        is_folder=is_folder,
        filesize=_opt_int(data, "filesize"),
        filelen=_opt_int(data, "filelen"),
        sha=_opt_str(data, "sha"),
        ctime=_opt_int(data, "ctime"),
        mtime=_opt_int(data, "mtime"),
        access_url=_opt_str(data, "access_url"),
        source_url=_opt_str(data, "source_url"),
        preview_url=_opt_str(data, "preview_url"),
        biz_attr=_opt_str(data, "biz_attr"),
        raw=dict(data),
    )


SliceFlow = Literal["offset", "finish", "multipart"]


@dataclass(frozen=True)
class SliceOps:
    """How one generation spells its slice upload: the only place where v1 and v2 differ, as data.

    ``flow`` is the engine's strategy key (it never asks which class a dialect is):

    * ``"offset"`` (v1): init answers the offset to continue from; resume = init again with ``session``;
      the slice that fills the object completes it and its answer carries the URLs.
    * ``"finish"`` (v2): init may carry ``uploadparts`` (SHA-1 of every slice, ``hash_parts``);
      an unfinished upload (-4019) is listed with ``list_op``; ``finish_op`` completes it.
    * ``"multipart"`` (xml): InitiateMultipartUpload / UploadPart / CompleteMultipartUpload, see
      :mod:`xmloperations` (not a JSON dialect; named here so that every generation has a flow).
    """

    flow: SliceFlow
    init_op: str
    data_op: str
    finish_op: str | None
    list_op: str | None
    #: Init's form fields after ``op``, in the order this generation's SDKs send them (absent = not sent).
    init_fields: tuple[str, ...]
    #: The data answer must name the slice's offset (v2); v1 may omit it.
    ack_names_offset: bool
    #: Init carries the SHA-1 of every slice: the engine computes them in its hash pass.
    hash_parts: bool


V1_SLICE_OPS = SliceOps(
    flow="offset",
    init_op="upload_slice",
    data_op="upload_slice",
    finish_op=None,
    list_op=None,
    init_fields=("filesize", "sha", "slice_size", "biz_attr", "session", "insertOnly"),
    ack_names_offset=False,
    hash_parts=False,
)
V2_SLICE_OPS = SliceOps(
    flow="finish",
    init_op="upload_slice_init",
    data_op="upload_slice_data",
    finish_op="upload_slice_finish",
    list_op="upload_slice_list",
    init_fields=("filesize", "slice_size", "sha", "uploadparts", "biz_attr", "insertOnly"),
    ack_names_offset=True,
    hash_parts=True,
)


class Dialect:
    """The JSON API operations of one generation; everything generation-specific is in ``slice_ops``."""

    api_version: ApiVersion
    slice_ops: SliceOps

    # ---- simple upload
    def prepare_upload(
        self,
        path: str,
        data_len: int,
        *,
        sha: str | None = None,
        biz_attr: str | None = None,
        insert_only: bool = False,
    ) -> CosRequest:
        path = normalize_file_path(path)
        fields: list[tuple[str, str]] = [("op", "upload")]
        if sha:
            fields.append(("sha", sha))
        if biz_attr:
            fields.append(("biz_attr", biz_attr))
        fields.append(("insertOnly", _flag(insert_only)))
        return CosRequest(
            "upload",
            "POST",
            path,
            fields=tuple(fields),
            body_format="multipart",
            file_field=FILE_FIELD,
            data_len=data_len,
        )

    def process_upload(self, status: int, body: bytes, *, path: str | None = None) -> ObjectUrls:
        """The URLs of the stored object. -174 is retryable here: the server hashed other bytes than the
        ``sha`` sent with them in the same request, so they were altered on the way and nothing was stored."""
        try:
            data = parse_envelope(status, body, op="upload", path=path)
        except CosIntegrityError as e:
            if e.code == SHA_MISMATCH:
                e.retryable = True
            raise
        urls = urls_from_data(data, op="upload")
        if urls is None:
            raise CosProtocolError("upload answer has no object URLs", operation="upload", path=path)
        return urls

    # ---- stat
    def prepare_stat(self, path: str) -> CosRequest:
        if not path.endswith("/"):
            path = normalize_file_path(path)
        else:
            path = normalize_folder_path(path)
        return CosRequest("stat", "GET", path, query=(("op", "stat"),))

    def process_stat(self, status: int, body: bytes, *, path: str) -> StatInfo:
        data = parse_envelope(status, body, op="stat", path=path)
        return stat_from_data(data, path.rstrip("/").rsplit("/", 1)[-1])

    # ---- download (GET of the object with a download signature, one byte range)
    def prepare_download(self, path: str, *, start: int, length: int) -> CosRequest:
        """``length`` bytes of the file from ``start`` (``length > 0``)."""
        if start < 0 or length <= 0:
            raise ValueError(f"download range needs start >= 0 and length > 0, got {start}+{length}")
        path = normalize_file_path(path)
        return CosRequest(
            "download", "GET", path, signature="download", headers=(("Range", f"bytes={start}-{start + length - 1}"),)
        )

    def process_download(self, status: int, body: bytes, *, path: str, start: int, length: int) -> bytes:
        """The range's bytes, or the typed error of the answer. A short or long body (a proxy that cut the
        answer, a server that ignored the range) is a retryable :class:`CosProtocolError`."""
        if status in (200, 206):
            if len(body) == length and (status == 206 or start == 0):
                return body
            if status == 206 or start == 0 or len(body) < length:
                raise CosProtocolError(
                    f"range {start}+{length}: answer carried {len(body)} bytes (HTTP {status})",
                    status=status,
                    operation="download",
                    path=path,
                )
            raise CosProtocolError(
                f"range {start}+{length}: the server ignored the Range header (HTTP 200)",
                status=status,
                operation="download",
                path=path,
            )
        parse_envelope(status, body, op="download", path=path)  # raises the typed error of the envelope
        raise CosProtocolError(
            f"download answered HTTP {status} with code 0", status=status, operation="download", path=path
        )

    # ---- delete (one-time signature)
    def prepare_delete(self, path: str) -> CosRequest:
        path = normalize_folder_path(path) if path.endswith("/") else normalize_file_path(path)
        if path == "/":
            from airflow_provider_cos.protocol.errors import CosPathError

            raise CosPathError("the bucket root cannot be deleted", code=-180, path=path)
        return CosRequest("delete", "POST", path, fields=(("op", "delete"),), body_format="json", signature="once")

    def process_delete(self, status: int, body: bytes, *, path: str | None = None) -> None:
        parse_envelope(status, body, op="delete", path=path)

    # ---- create folder
    def prepare_create_folder(self, path: str, *, biz_attr: str = "") -> CosRequest:
        path = normalize_folder_path(path)
        if path == "/":
            from airflow_provider_cos.protocol.errors import CosPathError

            raise CosPathError("the bucket root always exists and cannot be created", code=-180, path=path)
        return CosRequest("create", "POST", path, fields=(("op", "create"), ("biz_attr", biz_attr)), body_format="json")

    def process_create_folder(self, status: int, body: bytes, *, path: str | None = None) -> int | None:
        data = parse_envelope(status, body, op="create", path=path)
        return _opt_int(data, "ctime")

    # ---- list
    def prepare_list(self, folder: str, *, num: int = LIST_MAX, context: str = "", prefix: str = "") -> CosRequest:
        folder = normalize_folder_path(folder)
        if not 1 <= num <= 1000:
            raise ValueError("num must be within 1..1000")
        if "/" in prefix:
            from airflow_provider_cos.protocol.errors import CosPathError

            raise CosPathError("list prefix must not contain '/'", code=-180, path=folder + prefix)
        return CosRequest(
            "list", "GET", folder + prefix, query=(("op", "list"), ("num", str(num)), ("context", context))
        )

    def process_list(self, status: int, body: bytes, *, path: str | None = None) -> ListPage:
        data = parse_envelope(status, body, op="list", path=path)
        infos_raw = data.get("infos") or []
        if not isinstance(infos_raw, list):
            raise CosProtocolError("list answer 'infos' is not an array", operation="list", path=path)
        infos = tuple(stat_from_data(item, str(item.get("name", ""))) for item in infos_raw if isinstance(item, dict))
        context = str(data.get("context") or "")
        listover = data.get("listover")
        over = bool(listover) if listover is not None else not context
        return ListPage(infos=infos, context=context, listover=over)

    # ---- slice protocol: one implementation, the generation's differences read from ``slice_ops``
    def _init_fields(
        self,
        *,
        filesize: int,
        sha: str,
        slice_size: int,
        uploadparts: Sequence[UploadPart] | None,
        biz_attr: str | None,
        insert_only: bool,
        session: str | None,
    ) -> tuple[tuple[str, str], ...]:
        values: dict[str, str | None] = {
            "filesize": str(filesize),
            "sha": sha,
            "slice_size": str(slice_size),
            "uploadparts": json.dumps([p.as_dict() for p in uploadparts], separators=(",", ":"))
            if uploadparts
            else None,
            "biz_attr": biz_attr or None,
            "session": session or None,
            "insertOnly": _flag(insert_only),
        }
        fields = [("op", self.slice_ops.init_op)]
        fields += [(name, value) for name in self.slice_ops.init_fields if (value := values[name]) is not None]
        return tuple(fields)

    def prepare_slice_init(
        self,
        path: str,
        *,
        filesize: int,
        sha: str,
        slice_size: int,
        uploadparts: Sequence[UploadPart] | None = None,
        biz_attr: str | None = None,
        insert_only: bool = False,
        session: str | None = None,
    ) -> CosRequest:
        """Open (or, where ``session`` is a field of this generation, resume) a slice upload."""
        path = normalize_file_path(path)
        fields = self._init_fields(
            filesize=filesize,
            sha=sha,
            slice_size=slice_size,
            uploadparts=uploadparts,
            biz_attr=biz_attr,
            insert_only=insert_only,
            session=session,
        )
        return CosRequest(self.slice_ops.init_op, "POST", path, fields=fields, body_format="multipart")

    def process_slice_init(self, status: int, body: bytes, *, path: str | None = None) -> InstantUpload | SliceSession:
        op = self.slice_ops.init_op
        data = parse_envelope(status, body, op=op, path=path)
        urls = urls_from_data(data, op=op)
        if urls is not None:
            return InstantUpload(urls)
        return SliceSession(
            session=require_str(data, "session", op=op),
            slice_size=require_int(data, "slice_size", op=op),
            offset=_opt_int(data, "offset") or 0,
            serial_upload=_opt_int(data, "serial_upload") == 1,
        )

    def prepare_slice_data(
        self, path: str, *, session: str, offset: int, length: int, sha: str | None = None
    ) -> CosRequest:
        path = normalize_file_path(path)
        op = self.slice_ops.data_op
        fields = [("op", op), ("session", session), ("offset", str(offset))]
        if sha:
            fields.append(("sha", sha))
        return CosRequest(
            op, "POST", path, fields=tuple(fields), body_format="multipart", file_field=FILE_FIELD, data_len=length
        )

    def process_slice_data(self, status: int, body: bytes, *, path: str | None = None) -> SliceAck:
        """The ack; ``urls`` is set when this slice completed the object (the ``offset`` flow)."""
        op = self.slice_ops.data_op
        data = parse_envelope(status, body, op=op, path=path)
        offset = require_int(data, "offset", op=op) if self.slice_ops.ack_names_offset else _opt_int(data, "offset")
        return SliceAck(
            session=str(data.get("session", "")),
            offset=offset or 0,
            datalen=_opt_int(data, "datalen"),
            datamd5=_opt_str(data, "datamd5"),
            urls=urls_from_data(data, op=op),
        )

    def _op(self, name: str | None, what: str) -> str:
        if name is None:
            raise CosConfigError(f"{self.api_version} has no {what} operation (slice flow {self.slice_ops.flow!r})")
        return name

    def prepare_slice_finish(self, path: str, *, session: str, filesize: int, sha: str | None = None) -> CosRequest:
        op = self._op(self.slice_ops.finish_op, "finish")
        path = normalize_file_path(path)
        fields = [("op", op), ("session", session), ("filesize", str(filesize))]
        if sha:
            fields.append(("sha", sha))
        return CosRequest(op, "POST", path, fields=tuple(fields), body_format="multipart")

    def process_slice_finish(self, status: int, body: bytes, *, path: str | None = None) -> ObjectUrls:
        op = self._op(self.slice_ops.finish_op, "finish")
        data = parse_envelope(status, body, op=op, path=path)
        urls = urls_from_data(data, op=op)
        if urls is None:
            raise CosProtocolError("finish answer has no object URLs", operation=op, path=path)
        return urls

    def prepare_slice_list(self, path: str) -> CosRequest:
        op = self._op(self.slice_ops.list_op, "list-slices")
        path = normalize_file_path(path)
        return CosRequest(op, "POST", path, fields=(("op", op),), body_format="multipart")

    def process_slice_list(self, status: int, body: bytes, *, path: str | None = None) -> InstantUpload | SliceSession:
        """The open session with its stored slices, or the URLs if the upload is already complete.

        HTTP 404 (no session, no file) raises :class:`CosNotFoundError`.
        """
        op = self._op(self.slice_ops.list_op, "list-slices")
        if status == 404:
            try:
                parse_envelope(status, body, op=op, path=path)
            except CosNotFoundError:
                raise
            except Exception:
                pass
            raise CosNotFoundError("no unfinished upload at this path", status=404, operation=op, path=path)
        data = parse_envelope(status, body, op=op, path=path)
        urls = urls_from_data(data, op=op)
        if urls is not None:
            return InstantUpload(urls)
        raw_parts = data.get("listparts") or []
        if isinstance(raw_parts, str):
            try:
                raw_parts = json.loads(raw_parts) if raw_parts.strip() else []
            except ValueError:
                raise CosProtocolError("listparts is not JSON", operation=op, path=path) from None
        if not isinstance(raw_parts, list):
            raise CosSessionError("listparts is not an array", operation=op, path=path)
        parts = []
        for item in raw_parts:
            if not isinstance(item, dict):
                continue
            off = _opt_int(item, "offset")
            length = _opt_int(item, "datalen")
            if off is None:
                continue
            parts.append(SlicePart(off, length if length is not None else -1))
        sha = _opt_str(data, "sha")
        return SliceSession(
            session=require_str(data, "session", op=op),
            slice_size=require_int(data, "slice_size", op=op),
            filesize=_opt_int(data, "filesize"),
            sha=sha.split("_")[0] if sha else None,
            serial_upload=_opt_int(data, "serial_upload") == 1,
            received=tuple(sorted(parts, key=lambda p: p.offset)),
        )


class V1Dialect(Dialect):
    """``/files/v1``: one op ``upload_slice`` for init and data; the completing slice returns URLs."""

    api_version: ApiVersion = "v1"
    slice_ops = V1_SLICE_OPS


class V2Dialect(Dialect):
    """``/files/v2``: init / data / finish / list."""

    api_version: ApiVersion = "v2"
    slice_ops = V2_SLICE_OPS


V1 = V1Dialect()
V2 = V2Dialect()


def dialect_for(api_version: str) -> Dialect:
    from airflow_provider_cos.protocol.paths import validate_api_version

    return V1 if validate_api_version(api_version) == "v1" else V2
