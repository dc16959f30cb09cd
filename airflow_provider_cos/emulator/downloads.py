"""Downloads of JSON-generation objects: ``GET`` of the object's URL with a ``sign`` (COS_JSON_API.md §1.2).

The request goes through the app's one pipeline like any other (route -> faults -> authentication ->
dispatch); its op name is ``download``, so fault rules can target it (``{"op": "download"}``). Served:
the whole object (200) or one ``Range: bytes=`` range (206 with ``Content-Range``; 416 when it starts
past the end), with ``Accept-Ranges``; the body is the bytes alone (their SHA-1 is ``stat``'s ``sha``).
A missing object is the ``-166`` envelope with HTTP 404. Range parsing is the XML API's
(:meth:`XmlOperations._range`), so both generations agree on every form.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import formatdate

from airflow_provider_cos.emulator.operations import Ctx
from airflow_provider_cos.emulator.replies import ApiError, Reply
from airflow_provider_cos.emulator.xmlapi import XmlError, XmlOperations

DOWNLOAD_OP = "download"
#: COS has no JSON code of its own for a bad range; the envelope says -61 with HTTP 416.
BAD_RANGE_CODE = -61


class JsonDownloads:
    """The ``download`` op; mixed into :class:`CosApp`."""

    def op_download(self, ctx: Ctx, headers: Mapping[str, str]) -> Reply:
        if ctx.path.endswith("/"):
            raise ApiError(-180, "a folder cannot be downloaded")
        meta = ctx.store.get(ctx.path)
        if meta is None or meta.kind != "file":
            raise ApiError(-166, "file does not exist", status=404)
        size = meta.filesize
        out = [("Accept-Ranges", "bytes"), ("Last-Modified", formatdate(meta.mtime, usegmt=True))]
        status, start, end = 200, 0, size
        rng = headers.get("range")
        if rng:
            try:
                start, end = XmlOperations._range(rng, size)
            except XmlError as exc:
                raise ApiError(BAD_RANGE_CODE, exc.detail, status=416) from None
            status = 206
            out.append(("Content-Range", f"bytes {start}-{end - 1}/{size}"))
        data = b""
        if end > start:
            try:
                with open(ctx.store.blob_path(meta), "rb") as fh:
                    fh.seek(start)
                    data = fh.read(end - start)
            except FileNotFoundError:  # replaced or deleted meanwhile
                raise ApiError(-166, "file does not exist", status=404) from None
        return Reply(status, data, "application/octet-stream", headers=out)
