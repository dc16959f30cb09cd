"""One exception hierarchy and one table of COS error codes, shared by the client and the emulator.

Every error the product raises derives from :class:`CosError` and carries the server's ``code`` and
``message`` (when there was a server answer), the HTTP ``status`` and a ``retryable`` flag that the
transfer engine's retry policy reads. Classification is by numeric code first, then by the message name
(several COS auth errors are only known by name, see COS_JSON_API.md §6), then by HTTP status.

The XML API (COS_XML_API.md §3) names its errors by string code; :data:`XML_ERROR_TABLE` classifies
those, and the emulator renders its XML error bodies from the same rows.

Codes marked *assigned* in :data:`ERROR_TABLE` are not documented by Tencent; this project picked them
so that the emulator can answer something stable. The client never depends on them alone: it also
matches the message name.
"""

from __future__ import annotations

from dataclasses import dataclass


class CosError(Exception):
    """Root of every error raised by airflow-provider-cos.

    ``code``/``message`` are the server's envelope fields (``None`` when the failure happened before an
    answer), ``status`` the HTTP status, ``retryable`` whether sending the same request again may succeed.
    """

    default_retryable = False
    #: The XML API's ``<Code>`` (e.g. ``NoSuchKey``) and ``<RequestId>``; ``None`` for JSON API errors.
    error_code: str | None = None
    request_id: str | None = None

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        status: int | None = None,
        retryable: bool | None = None,
        operation: str | None = None,
        path: str | None = None,
    ) -> None:
        self.message = message
        self.code = code
        self.status = status
        self.retryable = self.default_retryable if retryable is None else retryable
        self.operation = operation
        self.path = path
        super().__init__(self._render())

    def __str__(self) -> str:
        # rendered now, not at construction: ``operation``/``path`` are often filled in later, by the
        # requester that knows the request the error belongs to
        return self._render()

    def _render(self) -> str:
        parts = [self.message]
        details = []
        if self.code is not None:
            details.append(f"code {self.code}")
        if self.status is not None:
            details.append(f"HTTP {self.status}")
        if self.operation:
            details.append(f"op={self.operation}")
        if self.path:
            details.append(f"path={self.path}")
        if details:
            parts.append("(" + ", ".join(details) + ")")
        return " ".join(parts)


class CosAuthError(CosError):
    """Signature missing, malformed or rejected; unknown SecretId; appid or bucket mismatch."""


class CosSignatureExpiredError(CosAuthError):
    """-96: the signature's expiry has passed. Re-signing and sending again once is the remedy."""

    default_retryable = True


class CosNotFoundError(CosError):
    """The bucket, folder, file or slice session does not exist."""


class CosAlreadyExistsError(CosError):
    """-177 file exists (``insertOnly=1``) or -178 path conflict (e.g. folder already there)."""


class CosUnfinishedUploadError(CosError):
    """-4019: an unfinished slice upload is open at this path; list it and resume, or delete it."""


class CosUploadConflictError(CosError):
    """Another upload of different content holds the path (an open slice session this upload did not
    create); it is left alone. Retry once that upload has finished, or delete the path if it was abandoned."""


class CosSessionError(CosError):
    """A slice session is unknown, expired, or was given an offset/length it cannot accept."""


class CosIntegrityError(CosError):
    """Size or SHA-1 mismatch between what was declared and what arrived (-174, -175, -168)."""


class CosFileChangedError(CosIntegrityError):
    """The local file changed (size or mtime) while it was being uploaded."""


class CosThrottledError(CosError):
    """The server asks the client to slow down (-71, -143)."""

    default_retryable = True


class CosServerError(CosError):
    """The server failed (HTTP 5xx, -181). Usually transient."""

    default_retryable = True


class CosInvalidRequestError(CosError):
    """The request is malformed or names invalid parameters; sending it again will not help."""


class CosPathError(CosInvalidRequestError):
    """A COS path is illegal: forbidden character, empty segment, file/folder form mismatch (-180)."""


class CosProtocolError(CosError):
    """The answer could not be understood (not JSON, missing fields). Possibly a broken proxy: retryable."""

    default_retryable = True


class CosTransportError(CosError):
    """Connection refused/reset or timed out before a complete answer arrived."""

    default_retryable = True


class CosCancelledError(CosError):
    """The transfer was cancelled by the caller."""


class CosConfigError(CosError):
    """Local configuration (connection fields, arguments) is missing or invalid."""


class CosLocalFileError(CosConfigError):
    """The local file cannot be uploaded: missing, unreadable, not a regular file (FIFO, socket, device,
    directory), a read failed, or it holds other bytes than its size says (``/proc``). ``path`` names it."""


@dataclass(frozen=True)
class ErrorSpec:
    """One row of the error table: how the emulator answers it and how the client classifies it."""

    code: int
    name: str
    exc_type: type[CosError]
    http_status: int
    retryable: bool
    description: str
    assigned: bool = False  # True when the numeric code is this project's choice, not Tencent's


def _spec(
    code: int,
    name: str,
    exc_type: type[CosError],
    http_status: int,
    description: str,
    *,
    retryable: bool | None = None,
    assigned: bool = False,
) -> ErrorSpec:
    return ErrorSpec(
        code,
        name,
        exc_type,
        http_status,
        exc_type.default_retryable if retryable is None else retryable,
        description,
        assigned,
    )


#: ERROR_CMD_COS_SHA_NOT_EQU: the SHA-1 of the bytes the server received is not the ``sha`` declared for them.
SHA_MISMATCH = -174

ERROR_TABLE: tuple[ErrorSpec, ...] = (
    _spec(-4019, "_ERROR_FILE_NOT_FINISH_UPLOAD", CosUnfinishedUploadError, 400, "unfinished slice upload"),
    _spec(-4020, "ERROR_SLICE_SESSION_NOTEXIST", CosSessionError, 400, "slice session unknown", assigned=True),
    _spec(-4021, "ERROR_SLICE_OFFSET_INVALID", CosSessionError, 400, "slice offset/length invalid", assigned=True),
    _spec(-4022, "ERROR_SLICE_INCOMPLETE", CosSessionError, 400, "finish before all slices arrived", assigned=True),
    _spec(
        -4023,
        "ERROR_INSUFFICIENT_STORAGE",
        CosServerError,
        507,
        "the emulator's disk is full (ENOSPC)",
        retryable=False,
        assigned=True,
    ),
    _spec(-181, "ERROR_CMD_COS_ERROR", CosServerError, 500, "storage backend error"),
    _spec(-180, "ERROR_CMD_COS_INVALID_PATH", CosPathError, 400, "illegal path"),
    _spec(-179, "ERROR_CMD_COS_INVALID_MOD_FLAG", CosInvalidRequestError, 400, "bad update flag"),
    _spec(-178, "ERROR_CMD_COS_PATH_CONFLICT", CosAlreadyExistsError, 400, "path conflict"),
    _spec(-177, "ERROR_CMD_COS_FILE_EXIST", CosAlreadyExistsError, 400, "file exists"),
    _spec(-176, "ERROR_CMD_COS_BUCKET_EXIST", CosAlreadyExistsError, 400, "bucket exists"),
    _spec(-175, "ERROR_CMD_COS_FILE_SIZE_NOT_EQU", CosIntegrityError, 400, "file size mismatch"),
    _spec(SHA_MISMATCH, "ERROR_CMD_COS_SHA_NOT_EQU", CosIntegrityError, 400, "SHA-1 mismatch"),
    _spec(-173, "ERROR_CMD_COS_DIR_NOT_EMPTY", CosInvalidRequestError, 400, "folder not empty"),
    _spec(-170, "ERROR_CMD_COS_INVALID_LIST_NUM", CosInvalidRequestError, 400, "bad list num"),
    _spec(-168, "ERROR_CMD_COS_INVALID_SHA", CosIntegrityError, 400, "malformed sha"),
    _spec(-166, "ERROR_CMD_COS_INDEX_ERROR", CosNotFoundError, 400, "file or folder does not exist"),
    _spec(-165, "ERROR_CMD_COS_MAX_NUM", CosInvalidRequestError, 400, "list num above the maximum"),
    _spec(-143, "ERROR_CMD_COS_DIR_WRITE_TOO_FAST", CosThrottledError, 400, "writing too fast in one dir"),
    _spec(-133, "ERROR_CMD_BUCKET_NOTEXIST", CosNotFoundError, 400, "bucket missing or wrong region"),
    _spec(-99, "ERROR_PROXY_AUTH_SIGN_REUSED", CosAuthError, 403, "one-time signature used twice", assigned=True),
    _spec(
        -98, "ERROR_PROXY_AUTH_ONCE_REQUIRED", CosAuthError, 403, "operation needs a one-time signature", assigned=True
    ),
    _spec(-96, "ERROR_PROXY_AUTH_EXPIRED", CosSignatureExpiredError, 403, "signature expired"),
    _spec(-95, "ERROR_PROXY_AUTH_FAILED", CosAuthError, 403, "signature mismatch (wrong SecretKey)", assigned=True),
    _spec(-94, "ERROR_PROXY_SIGN_BUCKET_NOTMATCH", CosAuthError, 403, "signature bucket mismatch", assigned=True),
    _spec(-93, "ERROR_PROXY_APPID_USERID_NOTMATCH", CosAuthError, 403, "signature appid mismatch", assigned=True),
    _spec(-92, "PROXY_AUTH_SECRETID_NOEXIST", CosAuthError, 403, "unknown SecretId", assigned=True),
    _spec(-91, "ERROR_PROXY_AUTH_SIGN_INVALID", CosAuthError, 403, "signature malformed", assigned=True),
    _spec(-90, "ERROR_PROXY_AUTH_SIGN_EMPTY", CosAuthError, 403, "no signature", assigned=True),
    _spec(-71, "ERROR_CMD_OPERATE_TOO_FAST", CosThrottledError, 400, "operating too fast"),
    _spec(-70, "ERROR_PROXY_SIGN_DECODE", CosAuthError, 403, "sign query parameter not URL-encoded"),
    _spec(-61, "ERROR_CGI_PARAM_INVALID", CosInvalidRequestError, 400, "invalid parameter", assigned=True),
    _spec(-60, "ERROR_CGI_PARAM_MISSING_OP", CosInvalidRequestError, 400, "missing op", assigned=True),
)

_BY_CODE: dict[int, ErrorSpec] = {spec.code: spec for spec in ERROR_TABLE}
_BY_NAME: dict[str, ErrorSpec] = {spec.name: spec for spec in ERROR_TABLE}
# Names seen in the wild for the same conditions (COS_JSON_API.md §6).
_BY_NAME.update(
    {
        "ERROR_PROXY_AUTH_SECRETID_NOEXIST": _BY_CODE[-92],
        "ERROR_PROXY_AUTH_APPID": _BY_CODE[-93],
        "ERROR_CMD_FILE_NOTEXIST": _BY_CODE[-166],
        "ERROR_SAME_FILE_UPLOAD": _BY_CODE[-177],
    }
)


def spec_for_code(code: int) -> ErrorSpec:
    """The table row for ``code``. Raises ``KeyError`` for a code not in the table."""
    return _BY_CODE[code]


def spec_for_name(name: str) -> ErrorSpec:
    return _BY_NAME[name]


def error_from_envelope(
    code: int,
    message: str,
    status: int | None,
    *,
    operation: str | None = None,
    path: str | None = None,
) -> CosError:
    """Turn a non-zero envelope (or an HTTP failure) into the typed error the table says."""
    spec = _BY_CODE.get(code) or _BY_NAME.get(message.strip())
    if spec is not None:
        exc_type: type[CosError] = spec.exc_type
        retryable: bool | None = spec.retryable
    elif status is not None and status >= 500:
        exc_type, retryable = CosServerError, True
    elif status == 404:
        exc_type, retryable = CosNotFoundError, False
    elif status in (401, 403):
        exc_type, retryable = CosAuthError, False
    elif status == 429:
        exc_type, retryable = CosThrottledError, True
    else:
        exc_type, retryable = CosError, False
    return exc_type(
        message or "COS error", code=code, status=status, retryable=retryable, operation=operation, path=path
    )


# ---------------------------------------------------------------------------------------------------
# XML API (COS_XML_API.md §3.3): string codes, one table for the client's classification and the
# emulator's answers.


@dataclass(frozen=True)
class XmlErrorSpec:
    """One XML API error: ``<Code>``, HTTP status, the exception it becomes and a default ``<Message>``.

    ``retryable`` is what the client's retry policy reads; a :class:`CosSignatureExpiredError` row
    (``RequestTimeTooSkewed``) means "sign again with a fresh KeyTime and resend once".
    """

    code: str
    http_status: int
    exc_type: type[CosError]
    retryable: bool
    message: str


def _xspec(
    code: str, status: int, exc_type: type[CosError], message: str, *, retryable: bool | None = None
) -> XmlErrorSpec:
    return XmlErrorSpec(code, status, exc_type, exc_type.default_retryable if retryable is None else retryable, message)


XML_ERROR_TABLE: tuple[XmlErrorSpec, ...] = (
    _xspec("InvalidArgument", 400, CosInvalidRequestError, "Invalid Argument."),
    _xspec("InvalidDigest", 400, CosIntegrityError, "The Content-MD5 you specified is not valid."),
    _xspec(  # the body changed on the way (the MD5 was computed from what was sent): sending it again may do
        "BadDigest",
        400,
        CosIntegrityError,
        "The Content-MD5 you specified did not match what we received.",
        retryable=True,
    ),
    _xspec(
        "EntityTooSmall",
        400,
        CosInvalidRequestError,
        "Your proposed upload is smaller than the minimum allowed object size.",
    ),
    _xspec(
        "EntityTooLarge", 400, CosInvalidRequestError, "Your proposed upload exceeds the maximum allowed object size."
    ),
    _xspec(
        "InvalidPart",
        400,
        CosSessionError,
        "One or more of the specified parts could not be found or its ETag did not match.",
    ),
    _xspec("InvalidPartOrder", 400, CosInvalidRequestError, "The list of parts was not in ascending order."),
    _xspec("MalformedXML", 400, CosInvalidRequestError, "The XML you provided was not well-formed."),
    _xspec("KeyTooLong", 400, CosPathError, "The object key is longer than 850 bytes."),
    _xspec("InvalidObjectName", 400, CosPathError, "The object key is not allowed."),
    _xspec(
        "RequestTimeout",
        400,
        CosTransportError,
        "Your socket connection to the server was not read from or written to within the timeout period.",
    ),
    _xspec("UserNetworkTooSlow", 400, CosTransportError, "The upload is too slow."),
    _xspec("AccessDenied", 403, CosAuthError, "Access Denied."),
    _xspec("InvalidAccessKeyId", 403, CosAuthError, "The access key Id format you provided is invalid."),
    _xspec("SignatureDoesNotMatch", 403, CosAuthError, "The Signature you specified is invalid."),
    _xspec(
        "RequestTimeTooSkewed",
        403,
        CosSignatureExpiredError,
        "The difference between the request time and the server's time is too large.",
    ),
    _xspec(
        "PathStyleDomainForbidden",
        403,
        CosInvalidRequestError,
        "Path-style requests are not allowed for this bucket; use <bucket>-<appid>.cos.<region>.myqcloud.com.",
    ),
    _xspec(
        "InvalidObjectState", 403, CosInvalidRequestError, "The operation is not valid for the object storage class."
    ),
    _xspec("NoSuchBucket", 404, CosNotFoundError, "The specified bucket does not exist."),
    _xspec("NoSuchKey", 404, CosNotFoundError, "The specified key does not exist."),
    _xspec("NoSuchUpload", 404, CosSessionError, "The specified multipart upload does not exist."),
    _xspec(
        "MethodNotAllowed", 405, CosInvalidRequestError, "The specified method is not allowed against this resource."
    ),
    _xspec("MissingContentLength", 411, CosInvalidRequestError, "You must provide the Content-Length HTTP header."),
    _xspec("PreconditionFailed", 412, CosError, "Precondition not match."),
    _xspec("InvalidRange", 416, CosInvalidRequestError, "The requested range is not satisfiable."),
    _xspec("InternalError", 500, CosServerError, "We encountered an internal error. Please try again."),
    _xspec("ServiceUnavailable", 503, CosServerError, "Please reduce your request rate."),
    _xspec("SlowDown", 503, CosThrottledError, "Please reduce your request rate."),
)

_XML_BY_CODE: dict[str, XmlErrorSpec] = {spec.code: spec for spec in XML_ERROR_TABLE}


def xml_spec(code: str) -> XmlErrorSpec:
    """The table row for an XML ``<Code>``. Raises ``KeyError`` for a code not in the table."""
    return _XML_BY_CODE[code]


def error_from_xml(
    code: str | None,
    message: str | None,
    status: int | None,
    *,
    operation: str | None = None,
    path: str | None = None,
    request_id: str | None = None,
) -> CosError:
    """Turn an XML API failure (``<Code>``, ``<Message>``, HTTP status) into the typed error the table says.

    Unknown codes fall back on the status: 5xx server (retry), 503/429 throttled (retry), 404 not found,
    401/403 auth, anything else a plain non-retryable :class:`CosError`. A HEAD error has no body:
    pass ``code=None`` and the status decides.
    """
    spec = _XML_BY_CODE.get(code) if code else None
    if spec is not None:
        exc_type: type[CosError] = spec.exc_type
        retryable = spec.retryable
        text = message or spec.message
    else:
        if status in (429, 503):
            exc_type, retryable = CosThrottledError, True
        elif status is not None and status >= 500:
            exc_type, retryable = CosServerError, True
        elif status == 404:
            exc_type, retryable = CosNotFoundError, False
        elif status in (401, 403):
            exc_type, retryable = CosAuthError, False
        else:
            exc_type, retryable = CosError, False
        text = message or (_status_text(status) if status is not None else "COS error")
    exc = exc_type(
        f"{code}: {text}" if code else text, status=status, retryable=retryable, operation=operation, path=path
    )
    exc.error_code = code or None
    exc.request_id = request_id
    return exc


#: What a status means when it is all an answer says (a HEAD error has no body), where "HTTP <n>" alone
#: would leave the reader guessing.
_STATUS_MEANING = {421: "Misdirected Request: the server does not serve this Host"}


def _status_text(status: int) -> str:
    meaning = _STATUS_MEANING.get(status)
    return f"HTTP {status} {meaning}" if meaning else f"HTTP {status}"


def xml_error(code: str, detail: str | None = None, **context: str | None) -> CosError:
    """The error of table row ``code`` as its server would answer it (status from the table).

    ``detail`` replaces the default message; used by the emulator and by the signature verifier.
    """
    spec = _XML_BY_CODE[code]
    return error_from_xml(code, detail or spec.message, spec.http_status, **context)
