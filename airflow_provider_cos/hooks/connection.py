"""The ``cos`` connection type: one field table, the form declarations built from it, and config parsing.

Everything the UI shows and everything the hook reads comes from :data:`EXTRA_FIELDS` and
:data:`UI_FIELD_BEHAVIOUR`, so the two form declarations Airflow knows about cannot drift:

* Airflow >= 3.2 reads ``conn-fields`` / ``ui-field-behaviour`` from the provider dict
  (:func:`provider_conn_fields`, :func:`provider_ui_field_behaviour`);
* Airflow 2.x / 3.0 / 3.1 call the hook's ``get_connection_form_widgets`` / ``get_ui_field_behaviour``
  (:func:`form_widgets`, :func:`hook_ui_field_behaviour`).

This module imports nothing from Airflow (the provider dict imports it at provider discovery time).
:class:`CosConnectionConfig` turns the raw connection values into validated settings and raises
:class:`~airflow_provider_cos.protocol.errors.CosConfigError` naming the offending field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from airflow_provider_cos.protocol.errors import CosConfigError
from airflow_provider_cos.protocol.paths import (
    API_VERSIONS,
    ApiVersion,
    default_endpoint,
    normalize_endpoint,
    normalize_region,
    validate_api_version,
    validate_appid,
    validate_bucket,
    xml_region,
)

CONN_TYPE = "cos"
HOOK_NAME = "Tencent COS"
DEFAULT_CONN_ID = "cos_default"

FieldKind = Literal["string", "integer", "number", "enum"]


@dataclass(frozen=True)
class ExtraField:
    """One field stored in the connection's ``extra`` JSON.

    ``kind`` picks the widget: text, integer, number or dropdown (``enum``). ``minimum``/``maximum``
    bound numbers. ``required`` fields are checked at first use (the forms cannot enforce it everywhere).
    """

    name: str
    label: str
    kind: FieldKind
    description: str
    default: Any = None
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    multiple_of: int | None = None
    required: bool = False
    placeholder: str | None = None


MiB = 1024 * 1024

#: The extra fields of a ``cos`` connection, in form order.
EXTRA_FIELDS: tuple[ExtraField, ...] = (
    ExtraField(
        "app_id",
        "APPID",
        "string",
        "Numeric APPID of the account (required), e.g. 1250000000.",
        required=True,
        placeholder="1250000000",
    ),
    ExtraField(
        "bucket",
        "Default bucket",
        "string",
        "Bucket used when a task gives none; plain name without the '-<appid>' suffix.",
        placeholder="examplebucket",
    ),
    ExtraField(
        "api_version",
        "API version",
        "enum",
        "xml: today's COS API (<bucket>-<appid>.cos.<region>.myqcloud.com, multipart upload); "
        "v1: /files/v1 with single-op upload_slice (default); v2: /files/v2 with upload_slice_init/data/finish/list.",
        default="v1",
        choices=API_VERSIONS,
    ),
    ExtraField(
        "region",
        "Region",
        "string",
        "Region of the bucket: COS's names (ap-guangzhou, ap-shanghai, ...) for xml; v2 also takes the short "
        "codes (sh, gz, tj, sgp), which xml translates. Default ap-guangzhou / gz. v1 ignores it.",
        placeholder="ap-guangzhou",
    ),
    ExtraField(
        "custom_domain",
        "Custom domain (xml)",
        "string",
        "xml only, optional: a domain bound to the connection's bucket (e.g. files.example.com); requests, Host "
        "header and signature use it instead of <bucket>-<appid>.cos.<region>.myqcloud.com. Calls for another "
        "bucket use that bucket's own host.",
    ),
    ExtraField(
        "security_token",
        "Security token (xml)",
        "string",
        "xml only, optional: the token of temporary credentials (STS), sent as x-cos-security-token.",
    ),
    ExtraField(
        "slice_size",
        "Slice / part size (bytes)",
        "integer",
        "A multiple of 64 KiB (64 KiB..20 MiB). Empty: the API's default - v1/v2 request 1 MiB slices (the "
        "server's answer wins), xml sends 8 MiB parts (at least 1 MiB, raised so a file needs at most 10000).",
        minimum=64 * 1024,
        maximum=20 * MiB,
        multiple_of=64 * 1024,
        placeholder="v1/v2: 1048576, xml: 8388608",
    ),
    ExtraField(
        "max_workers",
        "Parallel slices",
        "integer",
        "How many slices or parts are sent at once (peak memory about max_workers x slice size + 5 MiB).",
        default=4,
        minimum=1,
        maximum=64,
    ),
    ExtraField(
        "simple_threshold",
        "Simple upload threshold (bytes)",
        "integer",
        "Files smaller than this go in one op=upload request; larger ones are sliced.",
        default=20 * MiB,
        minimum=0,
    ),
    ExtraField(
        "connect_timeout",
        "Connect timeout (s)",
        "number",
        "Seconds to wait for a TCP connection.",
        default=10.0,
        minimum=0.1,
        maximum=600,
    ),
    ExtraField(
        "read_timeout",
        "Read timeout (s)",
        "number",
        "Seconds to wait for an answer to one request.",
        default=120.0,
        minimum=0.1,
        maximum=3600,
    ),
    ExtraField(
        "max_retries",
        "Retries per request",
        "integer",
        "Retries of one request on timeouts, connection errors and HTTP 5xx (never on auth or path errors).",
        default=5,
        minimum=0,
        maximum=50,
    ),
    ExtraField(
        "retry_deadline",
        "Retry deadline (s)",
        "number",
        "Seconds one request may take, all its retries and waits included; then it fails with an error "
        "naming this deadline. The Test button ignores it and answers within about 10 s.",
        default=600.0,
        minimum=1,
        maximum=86400,
    ),
)

FIELDS_BY_NAME: dict[str, ExtraField] = {f.name: f for f in EXTRA_FIELDS}

#: Standard fields: hidden ones, relabelled ones and placeholders (shared by both declarations).
#: The port stays visible: Airflow 3.3.2's Test button sends ``port: 0`` for a connection stored without
#: a port and its API then answers "Bad Request" (apache/airflow PR 73298), so a form-made connection
#: needs a port for the button to work. The hook uses it as the endpoint's port (see :func:`_endpoint`).
HIDDEN_FIELDS: tuple[str, ...] = ("schema",)
RELABELING: dict[str, str] = {
    "login": "SecretId",
    "password": "SecretKey",
    "host": "Endpoint (base URL)",
    "port": "Endpoint port",
}
STANDARD_PLACEHOLDERS: dict[str, str] = {
    "login": "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
    "password": "SecretKey of that SecretId",
    "host": "empty = Tencent's endpoint; e.g. http://127.0.0.1 (emulator). /files/vN is appended",
    "port": "80 http, 443 https, 8089 emulator: the Test button needs it",
}


# ----------------------------------------------------------------------------------- declarations


def _json_schema(f: ExtraField) -> dict[str, Any]:
    json_type = {"string": "string", "integer": "integer", "number": "number", "enum": "string"}[f.kind]
    schema: dict[str, Any] = {"type": json_type if f.required else [json_type, "null"]}
    if f.default is not None:
        schema["default"] = f.default
    if f.choices:
        schema["enum"] = list(f.choices)
    if f.minimum is not None:
        schema["minimum"] = f.minimum
    if f.maximum is not None:
        schema["maximum"] = f.maximum
    return schema


def provider_conn_fields() -> dict[str, dict[str, Any]]:
    """``connection-types[].conn-fields`` of the provider dict (what Airflow 3.2+ renders)."""
    return {f.name: {"label": f.label, "description": f.description, "schema": _json_schema(f)} for f in EXTRA_FIELDS}


def _placeholders() -> dict[str, str]:
    placeholders = dict(STANDARD_PLACEHOLDERS)
    for f in EXTRA_FIELDS:
        if f.placeholder:
            placeholders[f.name] = f.placeholder
    return placeholders


def provider_ui_field_behaviour() -> dict[str, Any]:
    """``connection-types[].ui-field-behaviour`` of the provider dict (kebab-case keys)."""
    return {
        "hidden-fields": list(HIDDEN_FIELDS),
        "relabeling": dict(RELABELING),
        "placeholders": _placeholders(),
    }


def hook_ui_field_behaviour() -> dict[str, Any]:
    """What ``CosHook.get_ui_field_behaviour()`` returns (snake_case keys, older UIs)."""
    return {
        "hidden_fields": list(HIDDEN_FIELDS),
        "relabeling": dict(RELABELING),
        "placeholders": _placeholders(),
    }


def form_widgets() -> dict[str, Any]:
    """WTForms fields for Airflow 2.x-3.1 (``get_connection_form_widgets``), built from the same table.

    Older UIs accept only String/Integer/Password/Boolean fields, so the dropdown becomes a text field
    with an ``any_of`` validator and numbers become text fields parsed by :class:`CosConnectionConfig`.
    Imports WTForms lazily: it is only present where the old Flask UI is.
    """
    from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import IntegerField, StringField
    from wtforms.validators import NumberRange, Optional, any_of

    widgets: dict[str, Any] = {}
    for f in EXTRA_FIELDS:
        label = lazy_gettext(f.label)
        if f.kind == "integer":
            widgets[f.name] = IntegerField(
                label,
                validators=[Optional(), NumberRange(min=f.minimum, max=f.maximum)],
                widget=BS3TextFieldWidget(),
                default=f.default,
                description=f.description,
            )
        elif f.kind == "enum":
            widgets[f.name] = StringField(
                label,
                validators=[any_of(list(f.choices))],
                widget=BS3TextFieldWidget(),
                default=f.default,
                description=f.description,
            )
        else:
            widgets[f.name] = StringField(
                label,
                widget=BS3TextFieldWidget(),
                default=f.default,
                description=f.description,
            )
    return widgets


# ------------------------------------------------------------------------------------ parsing


@dataclass(frozen=True)
class CosConnectionConfig:
    """Validated settings of one ``cos`` connection. ``repr`` never shows the SecretKey."""

    conn_id: str
    secret_id: str
    secret_key: str = field(repr=False)
    endpoint: str
    api_version: ApiVersion
    appid: str
    bucket: str | None
    region: str | None
    slice_size: int | None  # None: the API's default (transfer.config.DEFAULT_SLICE_SIZE)
    max_workers: int
    simple_threshold: int
    connect_timeout: float
    read_timeout: float
    max_retries: int
    retry_deadline: float
    security_token: str | None = field(default=None, repr=False)
    custom_domain: str | None = None

    @classmethod
    def from_values(
        cls,
        *,
        conn_id: str,
        login: str | None,
        password: str | None,
        host: str | None,
        port: int | None = None,
        schema: str | None = None,
        extra: Mapping[str, Any] | str | None = None,
    ) -> CosConnectionConfig:
        """Validate raw connection values. Raises :class:`CosConfigError` naming the field at fault.

        Messages name the field, not the connection: the caller knows which connection it read (the
        hook prefixes its id; the Test button must not, Airflow tests a copy under a random id)."""
        extras = _extras(extra)
        if not login:
            raise CosConfigError("SecretId (login) is empty")
        if not password:
            raise CosConfigError("SecretKey (password) is empty")

        raw_appid = extras.get("app_id")
        if raw_appid in (None, ""):
            raise CosConfigError("extra field 'app_id' is required (the numeric APPID, e.g. 1250000000)")
        try:
            appid = validate_appid(raw_appid)
        except CosConfigError as exc:
            raise CosConfigError(f"extra field 'app_id': {exc.message}") from exc

        try:
            api_version = validate_api_version(str(extras.get("api_version") or "v1").strip())
        except CosConfigError as exc:
            raise CosConfigError(f"extra field 'api_version': {exc.message}") from exc

        bucket = extras.get("bucket") or None
        if bucket is not None:
            try:
                bucket = _plain_bucket(str(bucket).strip(), appid)
            except CosConfigError as exc:
                raise CosConfigError(f"extra field 'bucket': {exc.message}") from exc

        region_raw = extras.get("region") or None
        try:
            region = normalize_region(str(region_raw)) if region_raw else None
            if api_version == "xml":
                region = xml_region(region)  # checked here, where it enters: not at the first request
        except CosConfigError as exc:
            raise CosConfigError(f"extra field 'region': {exc.message}") from exc

        custom_domain = _custom_domain(extras.get("custom_domain"))
        if custom_domain and api_version == "xml" and bucket is None:
            raise CosConfigError(
                f"extra field 'custom_domain' ({custom_domain}) is bound to one bucket: set extra field 'bucket' to it"
            )
        endpoint = _endpoint(host, port, schema, api_version, region)
        numbers: dict[str, float] = {}
        for f in EXTRA_FIELDS:
            if f.kind in ("integer", "number") and (value := _number(f, extras.get(f.name))) is not None:
                numbers[f.name] = value  # a field without a default and without a value is left out
        return cls(
            conn_id=conn_id,
            secret_id=login.strip(),
            secret_key=password,
            endpoint=endpoint,
            api_version=api_version,
            appid=appid,
            bucket=bucket,
            region=region,
            slice_size=int(numbers["slice_size"]) if "slice_size" in numbers else None,
            max_workers=int(numbers["max_workers"]),
            simple_threshold=int(numbers["simple_threshold"]),
            connect_timeout=float(numbers["connect_timeout"]),
            read_timeout=float(numbers["read_timeout"]),
            max_retries=int(numbers["max_retries"]),
            retry_deadline=float(numbers["retry_deadline"]),
            security_token=str(extras.get("security_token") or "").strip() or None,
            custom_domain=custom_domain,
        )

    def resolve_bucket(self, bucket: str | None) -> str:
        """The bucket a call targets: the argument, else the connection's default."""
        name = bucket or self.bucket
        if not name:
            raise CosConfigError(
                f"no bucket given, and connection {self.conn_id!r} has no default bucket (extra field 'bucket')"
            )
        try:
            return _plain_bucket(name, self.appid)
        except CosConfigError as exc:
            raise CosConfigError(f"bucket: {exc.message}") from exc


def _custom_domain(raw: Any) -> str | None:
    """``files.example.com`` (a scheme or a trailing ``/`` given in the field are dropped), or ``None``."""
    text = str(raw or "").strip()
    for prefix in ("https://", "http://"):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :]
    text = text.rstrip("/")
    if not text:
        return None
    if "/" in text or " " in text:
        raise CosConfigError(f"extra field 'custom_domain' must be a host name such as files.example.com, got {raw!r}")
    return text


def _plain_bucket(bucket: str, appid: str) -> str:
    """A valid bucket name that is not the full ``<name>-<appid>`` form the console and the XML API show
    (pasted as is, every call would answer "bucket not found")."""
    name = validate_bucket(bucket)
    suffix = f"-{appid}"
    if name.endswith(suffix) and len(name) > len(suffix):
        raise CosConfigError(
            f"bucket name {name!r} ends with {suffix!r}, the app_id: write the plain name {name[: -len(suffix)]!r}"
        )
    return name


def _extras(extra: Mapping[str, Any] | str | None) -> dict[str, Any]:
    if extra is None or extra == "":
        return {}
    if isinstance(extra, str):
        try:
            loaded = json.loads(extra)
        except ValueError as exc:
            raise CosConfigError(f"extra is not valid JSON: {exc}") from exc
    else:
        loaded = extra
    if not isinstance(loaded, Mapping):
        raise CosConfigError("extra must be a JSON object")
    values: dict[str, Any] = {}
    prefix = f"extra__{CONN_TYPE}__"
    for key, value in loaded.items():
        # Airflow 2.x forms stored custom fields as extra__<conn_type>__<name>.
        name = key[len(prefix) :] if key.startswith(prefix) else key
        if name not in values or value not in (None, ""):
            values[name] = value
    return values


_SCHEME_PORTS = {"http": 80, "https": 443}


def _endpoint(
    host: str | None, port: int | None, schema: str | None, api_version: ApiVersion, region: str | None
) -> str:
    """The endpoint base URL from the host field and the port field.

    The port field, when set, is the endpoint's port: ``http://127.0.0.1`` with port 8089 is
    ``http://127.0.0.1:8089``. A port written in the host as well must agree with it. ``0`` and empty
    mean "no port" (Airflow 3.3.2's UI sends ``0`` for an empty field). An empty host is Tencent's
    endpoint, plain http on port 80, so no other port fits it.
    """
    port = _port(port)
    if not host or not host.strip():
        endpoint = default_endpoint(api_version, region)
        default_port = _SCHEME_PORTS[urlsplit(endpoint).scheme]
        if port not in (None, default_port):
            raise CosConfigError(
                f"port {port} is set but host is empty (Tencent's endpoint {endpoint} uses port {default_port}); "
                "set host to the endpoint that listens on that port, or clear the port"
            )
        return endpoint
    value = host.strip()
    if "://" not in value:
        # A URI-style connection splits scheme/host/port; put them back together.
        scheme = schema if schema in ("http", "https") else "http"
        value = f"{scheme}://{value}"
    try:
        endpoint = normalize_endpoint(value)
    except CosConfigError as exc:
        raise CosConfigError(f"host (endpoint base URL) {host!r} is malformed: {exc.message}") from exc
    if port is None:
        return endpoint
    parts = urlsplit(endpoint)
    if parts.port is not None:
        if parts.port != port:
            raise CosConfigError(
                f"host {host!r} names port {parts.port} but the port field says {port}; "
                "make them agree or clear one of them"
            )
        return endpoint
    if port == _SCHEME_PORTS[parts.scheme]:
        return endpoint
    hostname = parts.hostname or ""
    netloc = f"[{hostname}]:{port}" if ":" in hostname else f"{hostname}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _port(raw: Any) -> int | None:
    """The port field as an int, ``None`` for empty or 0 (Airflow 3.3.2's UI sends 0 for "no port")."""
    if raw is None or raw == "" or raw == 0:
        return None
    text = str(raw).strip()
    if isinstance(raw, bool) or not text.isdigit() or not 1 <= int(text) <= 65535:
        raise CosConfigError(f"port must be a number within 1..65535, got {raw!r}")
    return int(text)


def _number(f: ExtraField, raw: Any) -> float | None:
    if raw is None or raw == "":
        return None if f.default is None else float(f.default)
    if isinstance(raw, bool):
        raise CosConfigError(f"extra field {f.name!r} must be a number, got {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise CosConfigError(f"extra field {f.name!r} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise CosConfigError(f"extra field {f.name!r} must be a finite number, got {raw!r}")
    if f.kind == "integer" and value != int(value):
        raise CosConfigError(f"extra field {f.name!r} must be an integer, got {raw!r}")
    if (f.minimum is not None and value < f.minimum) or (f.maximum is not None and value > f.maximum):
        upper = "inf" if f.maximum is None else f"{f.maximum:g}"
        raise CosConfigError(f"extra field {f.name!r} = {raw!r} is outside {f.minimum:g}..{upper}")
    if f.multiple_of and value % f.multiple_of:
        raise CosConfigError(f"extra field {f.name!r} = {raw!r} is not a multiple of {f.multiple_of}")
    return value
