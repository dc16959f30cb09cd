"""COS XML API request signature (``q-sign-algorithm=sha1``, COS_XML_API.md §2): the signer and the verifier.

::

    KeyTime       = "<start>;<end>"                       (Unix seconds)
    SignKey       = hex(HMAC-SHA1(SecretKey, KeyTime))
    HttpString    = lower(method) \\n UriPathname \\n HttpParameters \\n HttpHeaders \\n
    StringToSign  = "sha1\\n" KeyTime "\\n" hex(SHA1(HttpString)) "\\n"
    Signature     = hex(HMAC-SHA1(SignKey as hex text, StringToSign))

``UriPathname`` is the *decoded* path (``/`` + object key, or ``/`` for bucket calls). Parameters and
headers are canonicalised the same way: ``lower(UrlEncode(name)) = UrlEncode(value)``, sorted by the
encoded name and joined with ``&``; their names joined with ``;`` form ``q-url-param-list`` and
``q-header-list``. ``UrlEncode`` keeps only ``A-Z a-z 0-9 - _ . ~``.

Pure: the clock is a parameter of :class:`XmlSigner` and ``now`` an argument of :func:`verify`. The
JSON API's signature lives in :mod:`signing`; one module per scheme.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from airflow_provider_cos.protocol.errors import CosAuthError, CosConfigError, CosPathError, xml_error

ALGORITHM = "sha1"
#: Headers the official Python SDK signs (besides every ``x-cos-*`` / ``x-ci-*``); §2.4.
SIGNED_HEADER_NAMES = frozenset(
    {
        "cache-control",
        "content-disposition",
        "content-encoding",
        "content-type",
        "content-md5",
        "content-length",
        "expect",
        "expires",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-unmodified-since",
        "origin",
        "range",
        "transfer-encoding",
        "pic-operations",
    }
)
SECURITY_TOKEN = "x-cos-security-token"
#: How far KeyTime starts before "now" (the SDK's choice: tolerates a client clock a minute fast).
START_SLACK_SECONDS = 60
#: Default KeyTime length of API calls (the SDK uses 10000 s; a shorter window limits replay).
DEFAULT_VALIDITY_SECONDS = 3600
#: The emulator's tolerance for a KeyTime that starts in the future (§2.7, §10 Q5).
DEFAULT_SKEW_SECONDS = 900
#: The seven fields of an Authorization value, in the order the SDKs and the doc write them.
AUTH_FIELDS = (
    "q-sign-algorithm",
    "q-ak",
    "q-sign-time",
    "q-key-time",
    "q-header-list",
    "q-url-param-list",
    "q-signature",
)


def url_encode(text: str) -> str:
    """COS ``UrlEncode``: UTF-8, every byte but ``A-Z a-z 0-9 - _ . ~`` as ``%XX`` (uppercase hex)."""
    return quote(text.encode("utf-8"), safe="-_.~")


def is_signed_header(name: str) -> bool:
    """True for the headers the SDK signs: :data:`SIGNED_HEADER_NAMES` and ``x-cos-*``/``x-ci-*``."""
    lower = name.lower()
    return lower in SIGNED_HEADER_NAMES or lower.startswith(("x-cos-", "x-ci-"))


def canonical(pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, ...], str]:
    """``(names, "n1=v1&n2=v2")`` for parameters or headers: names lowercased after encoding, sorted.

    A name given twice (in any case) keeps its last value, as the SDK's ``dict`` does.
    """
    encoded: dict[str, str] = {}
    for name, value in pairs:
        encoded[url_encode(name).lower()] = url_encode(value)
    names = tuple(sorted(encoded))
    return names, "&".join(f"{n}={encoded[n]}" for n in names)


def key_time(start: int, end: int) -> str:
    return f"{start};{end}"


def sign_key(secret_key: str, keytime: str) -> str:
    return hmac.new(secret_key.encode("utf-8"), keytime.encode("utf-8"), hashlib.sha1).hexdigest()


def http_string(method: str, uri_pathname: str, http_parameters: str, http_headers: str) -> str:
    return f"{method.lower()}\n{uri_pathname}\n{http_parameters}\n{http_headers}\n"


def string_to_sign(keytime: str, httpstring: str) -> str:
    digest = hashlib.sha1(httpstring.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{keytime}\n{digest}\n"


@dataclass(frozen=True)
class XmlSignature:
    """A computed or received signature. ``http_string``/``string_to_sign`` are empty when parsed."""

    secret_id: str
    sign_time: str
    key_time: str
    header_list: tuple[str, ...]
    param_list: tuple[str, ...]
    signature: str
    http_string: str = field(default="", repr=False, compare=False)
    string_to_sign: str = field(default="", repr=False, compare=False)

    def fields(self) -> tuple[tuple[str, str], ...]:
        """The seven ``q-*`` pairs in wire order (raw values, not URL-encoded)."""
        return (
            ("q-sign-algorithm", ALGORITHM),
            ("q-ak", self.secret_id),
            ("q-sign-time", self.sign_time),
            ("q-key-time", self.key_time),
            ("q-header-list", ";".join(self.header_list)),
            ("q-url-param-list", ";".join(self.param_list)),
            ("q-signature", self.signature),
        )

    def authorization(self) -> str:
        """The ``Authorization`` header value."""
        return "&".join(f"{k}={v}" for k, v in self.fields())

    def query(self) -> str:
        """The pre-signed URL form: the seven pairs, values URL-encoded (``;`` becomes ``%3B``)."""
        return "&".join(f"{k}={url_encode(v)}" for k, v in self.fields())

    def window(self) -> tuple[int, int]:
        """``(start, end)`` of ``q-key-time``; :class:`CosAuthError` when it is not two integers."""
        return _parse_window(self.key_time)


def sign(
    secret_id: str,
    secret_key: str,
    *,
    method: str,
    uri_pathname: str,
    params: Iterable[tuple[str, str]] = (),
    headers: Iterable[tuple[str, str]] = (),
    keytime: str,
    signtime: str | None = None,
) -> XmlSignature:
    """Sign exactly the given parameters and headers (decoded names and values).

    SignKey is derived from ``keytime`` (``q-key-time``); StringToSign carries ``signtime``
    (``q-sign-time``), which defaults to the same string as every SDK sends.
    """
    signtime = keytime if signtime is None else signtime
    param_list, http_parameters = canonical(params)
    header_list, http_headers = canonical(headers)
    httpstring = http_string(method, uri_pathname, http_parameters, http_headers)
    to_sign = string_to_sign(signtime, httpstring)
    signature = hmac.new(
        sign_key(secret_key, keytime).encode("ascii"), to_sign.encode("utf-8"), hashlib.sha1
    ).hexdigest()
    return XmlSignature(secret_id, signtime, keytime, header_list, param_list, signature, httpstring, to_sign)


@dataclass(frozen=True)
class XmlCredentials:
    """SecretId/SecretKey and, for temporary credentials, the security token. ``repr`` hides secrets."""

    secret_id: str
    secret_key: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.secret_id:
            raise CosConfigError("SecretId is empty")
        if not self.secret_key:
            raise CosConfigError("SecretKey is empty")


class XmlSigner:
    """Signs XML API requests with a fresh KeyTime each call. Thread-safe (no mutable state).

    ``validity`` is the KeyTime length after "now"; KeyTime starts :data:`START_SLACK_SECONDS` earlier.
    With a security token, :meth:`sign_headers` adds and signs ``x-cos-security-token`` and
    :meth:`presign_query` appends it as a parameter (which the SDK forgets to do).
    """

    def __init__(
        self,
        credentials: XmlCredentials,
        *,
        validity: int = DEFAULT_VALIDITY_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if validity <= 0:
            raise CosConfigError(f"signature validity must be > 0 seconds, got {validity!r}")
        self._credentials = credentials
        self._validity = validity
        self._clock = clock

    def __repr__(self) -> str:
        return f"XmlSigner(secret_id={self._credentials.secret_id!r}, validity={self._validity})"

    def _keytime(self, validity: int | None = None) -> str:
        now = int(self._clock())
        return key_time(now - START_SLACK_SECONDS, now + (self._validity if validity is None else validity))

    def sign_headers(
        self,
        method: str,
        uri_pathname: str,
        params: Sequence[tuple[str, str]],
        headers: Mapping[str, str],
    ) -> dict[str, str]:
        """The headers to send: ``headers`` plus the token (if any) and ``Authorization``.

        Signs every parameter and the headers :func:`is_signed_header` selects; ``headers`` must already
        hold ``Host`` (and ``Content-Length`` when the transport will send one) as they will go out.
        """
        out = dict(headers)
        token = self._credentials.security_token
        if token is not None:
            out[SECURITY_TOKEN] = token
        signed = [(k, v) for k, v in out.items() if is_signed_header(k)]
        signature = sign(
            self._credentials.secret_id,
            self._credentials.secret_key,
            method=method,
            uri_pathname=uri_pathname,
            params=params,
            headers=signed,
            keytime=self._keytime(),
        )
        out["Authorization"] = signature.authorization()
        return out

    def presign_query(
        self,
        method: str,
        uri_pathname: str,
        params: Sequence[tuple[str, str]],
        host: str,
        *,
        validity: int,
    ) -> str:
        """The query string of a pre-signed URL (``q-*`` pairs, then ``params``, then the token)."""
        signature = sign(
            self._credentials.secret_id,
            self._credentials.secret_key,
            method=method,
            uri_pathname=uri_pathname,
            params=params,
            headers=[("host", host)],
            keytime=self._keytime(validity),
        )
        parts = [signature.query(), *(f"{url_encode(k)}={url_encode(v)}" for k, v in params)]
        if self._credentials.security_token is not None:
            parts.append(f"{SECURITY_TOKEN}={url_encode(self._credentials.security_token)}")
        return "&".join(parts)


# ------------------------------------------------------------------------------------------------ verify


def _denied(code: str, detail: str) -> CosAuthError:
    exc = xml_error(code, detail)
    assert isinstance(exc, CosAuthError)
    return exc


def _parse_window(keytime: str) -> tuple[int, int]:
    start, sep, end = keytime.partition(";")
    if not sep or not start.isdigit() or not end.isdigit():
        raise _denied("AccessDenied", f"q-key-time is not '<start>;<end>' in Unix seconds: {keytime[:40]!r}")
    return int(start), int(end)


def _from_fields(values: Mapping[str, str]) -> XmlSignature:
    missing = [name for name in AUTH_FIELDS if name not in values]
    if missing:
        raise _denied("AccessDenied", "signature lacks " + ", ".join(missing))
    if values["q-sign-algorithm"].lower() != ALGORITHM:
        raise _denied("AccessDenied", f"q-sign-algorithm must be sha1, got {values['q-sign-algorithm'][:20]!r}")

    def names(text: str) -> tuple[str, ...]:
        return tuple(n.lower() for n in text.split(";") if n)

    signature = XmlSignature(
        secret_id=values["q-ak"],
        sign_time=values["q-sign-time"],
        key_time=values["q-key-time"],
        header_list=names(values["q-header-list"]),
        param_list=names(values["q-url-param-list"]),
        signature=values["q-signature"].lower(),
    )
    signature.window()
    return signature


def parse_authorization(value: str) -> XmlSignature:
    """Decode an ``Authorization`` value without checking it (field order free, unknown fields ignored).

    Raises :class:`CosAuthError` ``AccessDenied`` naming what is wrong.
    """
    values: dict[str, str] = {}
    for pair in value.strip().split("&"):
        name, sep, field_value = pair.partition("=")
        if not sep:
            raise _denied("AccessDenied", f"Authorization has a field without '=': {name[:20]!r}")
        values.setdefault(name.strip().lower(), field_value.strip())
    return _from_fields(values)


def signature_from_query(params: Sequence[tuple[str, str]]) -> XmlSignature | None:
    """The signature carried by form-decoded query parameters (pre-signed URL), or ``None`` if absent."""
    values = {k.lower(): v for k, v in params if k.lower().startswith("q-")}
    if "q-signature" not in values and "q-sign-algorithm" not in values:
        return None
    return _from_fields(values)


def find_signature(headers: Mapping[str, str], params: Sequence[tuple[str, str]]) -> XmlSignature | None:
    """Authorization header first, else ``q-*`` query parameters, else ``None`` (anonymous)."""
    for name, value in headers.items():
        if name.lower() == "authorization" and value.strip():
            return parse_authorization(value)
    return signature_from_query(params)


def _lookup(pairs: Iterable[tuple[str, str]], wanted: Iterable[str]) -> list[tuple[str, str]] | str:
    """The listed items by lowercase encoded name, or the first listed name that is absent."""
    by_name: dict[str, tuple[str, str]] = {}
    for name, value in pairs:
        by_name[url_encode(name).lower()] = (name, value)
    found = []
    for name in wanted:
        if name not in by_name:
            return name
        found.append(by_name[name])
    return found


def header_value_from_wire(value: str) -> str:
    """Undo an HTTP stack that decoded header bytes as ISO-8859-1 (UTF-8 metadata, §2.7 step 4)."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def verify(
    signature: XmlSignature,
    secret_lookup: Callable[[str], str | None],
    *,
    method: str,
    uri_pathname: str | Sequence[str],
    params: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    now: int,
    skew: int = DEFAULT_SKEW_SECONDS,
    token_lookup: Callable[[str], str | None] | None = None,
) -> None:
    """Check a received signature as COS does (§2.7); returns ``None`` or raises :class:`CosAuthError`.

    ``params`` are the form-decoded query parameters (``q-*`` ones are skipped), ``headers`` the
    received headers (any case). Only the *listed* parameters and headers are signed; extra ones are
    allowed. ``uri_pathname`` may list alternatives (path-style requests, §10 Q8). Order of checks:
    unknown SecretId (``InvalidAccessKeyId``), expired (``AccessDenied`` "Request has expired"),
    not yet valid beyond ``skew`` (``RequestTimeTooSkewed``), security token (``AccessDenied``),
    recomputed signature (``SignatureDoesNotMatch``; a ``host`` with ``:port`` is retried without it,
    the SDK's ``Domain`` mode).
    """
    secret = secret_lookup(signature.secret_id)
    if secret is None:
        raise _denied("InvalidAccessKeyId", "The SecretId you provided does not exist.")
    start, end = signature.window()
    if now > end:
        raise _denied("AccessDenied", "Request has expired")
    if now < start - skew:
        raise _denied("RequestTimeTooSkewed", "The request's KeyTime starts too far in the future.")
    if token_lookup is not None:
        expected_token = token_lookup(signature.secret_id)
        if expected_token is not None:
            sent = [v for k, v in headers.items() if k.lower() == SECURITY_TOKEN]
            sent += [v for k, v in params if k.lower() == SECURITY_TOKEN]
            if not sent or not hmac.compare_digest(sent[0].encode("utf-8"), expected_token.encode("utf-8")):
                raise _denied("AccessDenied", "x-cos-security-token is missing or does not match the SecretId")
    plain_params = [(k, v) for k, v in params if not k.lower().startswith("q-")]
    listed_params = _lookup(plain_params, signature.param_list)
    if isinstance(listed_params, str):
        raise _denied("SignatureDoesNotMatch", f"signed parameter {listed_params!r} is not in the request")
    wire_headers = [(k, header_value_from_wire(v)) for k, v in headers.items()]
    listed_headers = _lookup(wire_headers, signature.header_list)
    if isinstance(listed_headers, str):
        raise _denied("SignatureDoesNotMatch", f"signed header {listed_headers!r} is not in the request")
    variants = [listed_headers]
    for i, (name, value) in enumerate(listed_headers):
        if name.lower() == "host" and ":" in value and not value.endswith("]"):
            variants.append([*listed_headers[:i], (name, value.rsplit(":", 1)[0]), *listed_headers[i + 1 :]])
    paths = [uri_pathname] if isinstance(uri_pathname, str) else list(uri_pathname)
    expected = signature.signature.encode("ascii", "replace")
    for path in paths:
        for variant in variants:
            got = sign(
                signature.secret_id,
                secret,
                method=method,
                uri_pathname=path,
                params=listed_params,
                headers=variant,
                keytime=signature.key_time,
                signtime=signature.sign_time,
            )
            if hmac.compare_digest(got.signature.encode("ascii"), expected):
                return
    raise _denied("SignatureDoesNotMatch", "The Signature you specified is invalid.")


def uri_pathname_of(raw_path: str) -> str:
    """The decoded ``UriPathname`` of a request-target path (no query): percent-decoded UTF-8, ``+`` kept.

    A path that does not decode as UTF-8 is a :class:`CosPathError`.
    """
    try:
        return unquote(raw_path, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise CosPathError(f"request path is not percent-encoded UTF-8: {raw_path[:60]!r}") from None
