"""COS JSON API signatures (COS_JSON_API.md §2), the one signer and the one verifier of the project.

``signature = base64(HMAC-SHA1(secret_key, plaintext) || plaintext)`` with
``plaintext = a=<appid>&k=<secret_id>&e=<expired>&t=<now>&r=<rand>&f=<fileid>&b=<bucket>``.

A multi-effect signature has ``expired > now`` and (here) an empty ``f``; a one-time signature has
``expired == 0`` and ``f = /<appid>/<bucket>/<encoded path>`` (see :func:`paths.fileid`).
Pure functions: the clock and the random source are parameters, so tests are deterministic.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from airflow_provider_cos.protocol.errors import CosAuthError, CosSignatureExpiredError, spec_for_code

MAC_LEN = 20
#: Tencent documents a maximum validity of "three months".
MAX_VALIDITY_SECONDS = 90 * 24 * 3600


def plaintext(appid: str, secret_id: str, expired: int, now: int, rand: int, fileid: str, bucket: str) -> str:
    """The signed text in the field order the official SDKs and the server's own example use."""
    return f"a={appid}&k={secret_id}&e={expired}&t={now}&r={rand}&f={fileid}&b={bucket}"


def sign_plaintext(secret_key: str, text: str | bytes) -> str:
    """Sign exact bytes: ``base64(HMAC-SHA1(key, text) || text)``."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    mac = hmac.new(secret_key.encode("utf-8"), raw, hashlib.sha1).digest()
    return base64.b64encode(mac + raw).decode("ascii")


def sign(
    secret_id: str,
    secret_key: str,
    appid: str | int,
    bucket: str,
    *,
    expired: int,
    now: int,
    rand: int,
    fileid: str = "",
) -> str:
    """Return the ``Authorization`` value for these fields.

    ``expired=0`` with ``fileid=/<appid>/<bucket>/<path>`` is a one-time signature; ``expired > now``
    is a multi-effect one.
    """
    return sign_plaintext(secret_key, plaintext(str(appid), secret_id, expired, now, rand, fileid, bucket))


@dataclass(frozen=True)
class SignatureFields:
    """A decoded signature: its fields as text and the exact bytes that were MACed."""

    appid: str
    bucket: str
    secret_id: str
    expired: int
    now: int
    rand: str
    fileid: str
    signed_bytes: bytes = field(repr=False)
    mac: bytes = field(repr=False)

    @property
    def one_time(self) -> bool:
        return self.expired == 0


def _auth_error(code: int, detail: str) -> CosAuthError:
    spec = spec_for_code(code)
    exc = spec.exc_type(f"{spec.name}: {detail}", code=code, status=spec.http_status)
    assert isinstance(exc, CosAuthError)
    return exc


def parse_signature(signature: str) -> SignatureFields:
    """Decode a signature without checking it. Field order does not matter; unknown fields are ignored.

    Raises :class:`CosAuthError` (-90 empty, -91 malformed).
    """
    if not signature or not signature.strip():
        raise _auth_error(-90, "no signature in Authorization header or sign parameter")
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise _auth_error(-91, "signature is not valid standard base64") from None
    if len(raw) <= MAC_LEN:
        raise _auth_error(-91, "signature too short")
    mac, body = raw[:MAC_LEN], raw[MAC_LEN:]
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _auth_error(-91, "signed text is not UTF-8") from None
    values: dict[str, str] = {}
    for pair in text.split("&"):
        key, sep, value = pair.partition("=")
        if not sep:
            raise _auth_error(-91, f"signed text has a field without '=': {key[:20]!r}")
        values.setdefault(key, value)
    missing = [k for k in ("a", "b", "k", "e", "t", "r") if k not in values]
    if missing:
        raise _auth_error(-91, "signed text lacks field(s) " + ",".join(missing))
    try:
        expired = int(values["e"])
        now = int(values["t"])
    except ValueError:
        raise _auth_error(-91, "fields e and t must be integers") from None
    return SignatureFields(
        appid=values["a"],
        bucket=values["b"],
        secret_id=values["k"],
        expired=expired,
        now=now,
        rand=values["r"],
        fileid=values.get("f", ""),
        signed_bytes=body,
        mac=mac,
    )


def verify(
    signature: str,
    secret_lookup: Callable[[str], str | None],
    *,
    appid: str,
    bucket: str,
    now: int,
) -> SignatureFields:
    """Check a signature against the URL's appid and bucket and the secret behind its SecretId.

    Field order is free: the MAC is computed over the exact bytes received. Checks, in order: SecretId
    known (-92), appid (-93), bucket (-94), HMAC (-95), expiry for multi-effect (-96). One-time
    single use and the ``f`` binding are the server's business (it has state); see the emulator.
    """
    fields = parse_signature(signature)
    secret = secret_lookup(fields.secret_id)
    if secret is None:
        raise _auth_error(-92, "unknown SecretId")
    if fields.appid != str(appid):
        raise _auth_error(-93, "signature appid does not match the URL")
    if fields.bucket != bucket:
        raise _auth_error(-94, "signature bucket does not match the URL")
    expected = hmac.new(secret.encode("utf-8"), fields.signed_bytes, hashlib.sha1).digest()
    if not hmac.compare_digest(expected, fields.mac):
        raise _auth_error(-95, "HMAC mismatch: wrong SecretKey or altered signature")
    if not fields.one_time and now > fields.expired:
        spec = spec_for_code(-96)
        raise CosSignatureExpiredError(f"{spec.name}: signature expired", code=-96, status=spec.http_status)
    return fields


@dataclass(frozen=True)
class Credentials:
    """SecretId/SecretKey pair. ``repr`` never shows the key."""

    secret_id: str
    secret_key: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.secret_id:
            raise CosAuthError("SecretId is empty")
        if not self.secret_key:
            raise CosAuthError("SecretKey is empty")


class Signer:
    """Makes fresh signatures for one appid/bucket pair with an injectable clock and random source.

    Thread-safe (no mutable state). ``validity`` is the lifetime of multi-effect signatures in seconds.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        validity: int = 600,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], int] = lambda: secrets.randbelow(4_294_967_295),
    ) -> None:
        if not 0 < validity <= MAX_VALIDITY_SECONDS:
            raise ValueError(f"signature validity must be within 1..{MAX_VALIDITY_SECONDS} seconds")
        self._credentials = credentials
        self._validity = validity
        self._clock = clock
        self._rand = rand

    def __repr__(self) -> str:
        return f"Signer(secret_id={self._credentials.secret_id!r}, validity={self._validity})"

    def multi(self, appid: str | int, bucket: str) -> str:
        now = int(self._clock())
        return sign(
            self._credentials.secret_id,
            self._credentials.secret_key,
            appid,
            bucket,
            expired=now + self._validity,
            now=now,
            rand=self._rand(),
        )

    def download(self, appid: str | int, bucket: str, encoded_path: str) -> str:
        """A multi-effect download signature: ``f`` is the URL-encoded object path only, without
        ``/<appid>/<bucket>`` (COS_JSON_API.md §2.3)."""
        now = int(self._clock())
        return sign(
            self._credentials.secret_id,
            self._credentials.secret_key,
            appid,
            bucket,
            expired=now + self._validity,
            now=now,
            rand=self._rand(),
            fileid=encoded_path,
        )

    def once(self, appid: str | int, bucket: str, fileid: str) -> str:
        now = int(self._clock())
        return sign(
            self._credentials.secret_id,
            self._credentials.secret_key,
            appid,
            bucket,
            expired=0,
            now=now,
            rand=self._rand(),
            fileid=fileid,
        )
