"""What the emulator answers: :class:`Reply` bytes, the COS envelope, and the request-level exceptions."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

from airflow_provider_cos.emulator.httpio import BodyReader
from airflow_provider_cos.protocol.errors import spec_for_code


class ApiError(Exception):
    """An error answer: COS ``code`` (from the table) and an optional HTTP status override."""

    def __init__(self, code: int, detail: str = "", *, status: int | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status


class DropConnection(Exception):
    """Close the socket without answering (fault injection)."""


_DATE: list[Any] = [0, ""]


def _http_date() -> str:
    """The Date header value, formatted once per second."""
    now = int(time.time())
    if _DATE[0] != now:
        _DATE[:] = [now, formatdate(now, usegmt=True)]
    return str(_DATE[1])


@dataclass
class Reply:
    """An answer. ``headers`` are extra header lines (exact spelling kept); ``content_length`` overrides
    the body's length in the header (a HEAD answer: the object's length, no body)."""

    status: int
    body: bytes
    content_type: str = "application/json"
    close: bool = False
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_length: int | None = None

    def to_bytes(self, *, keep_alive: bool) -> bytes:
        try:
            reason = HTTPStatus(self.status).phrase
        except ValueError:
            reason = "Status"
        extra = "".join(f"{name}: {value}\r\n" for name, value in self.headers)
        length = len(self.body) if self.content_length is None else self.content_length
        head = (
            f"HTTP/1.1 {self.status} {reason}\r\n"
            f"Server: cos-emulator\r\nDate: {_http_date()}\r\n"
            f"Content-Type: {self.content_type}\r\nContent-Length: {length}\r\n{extra}"
            f"Connection: {'keep-alive' if keep_alive and not self.close else 'close'}\r\n\r\n"
        )
        return head.encode("latin-1") + self.body


def envelope(code: int, message: str, data: Mapping[str, Any] | None = None, *, status: int = 200) -> Reply:
    body = json.dumps(
        {"code": code, "message": message, "data": dict(data or {})}, ensure_ascii=False, separators=(",", ":")
    )
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
