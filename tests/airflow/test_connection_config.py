"""Connection parsing: clear errors naming the field, at first use, never in ``__init__``."""

from __future__ import annotations

import json

import pytest

from airflow_provider_cos.hooks.connection import CosConnectionConfig
from airflow_provider_cos.hooks.cos import CosHook
from airflow_provider_cos.protocol.errors import CosConfigError


def _config(**overrides: object) -> CosConnectionConfig:
    values: dict = {
        "conn_id": "c",
        "login": "AKIDEXAMPLE",
        "password": "s3cr3tKEY",
        "host": "http://127.0.0.1:8089",
        "extra": {"app_id": "1250000000", "bucket": "examplebucket"},
    }
    values.update(overrides)
    return CosConnectionConfig.from_values(**values)


def test_defaults() -> None:
    cfg = _config()
    assert cfg.api_version == "v1"
    assert cfg.endpoint == "http://127.0.0.1:8089"
    assert cfg.appid == "1250000000" and cfg.bucket == "examplebucket"
    assert cfg.slice_size is None and cfg.max_workers == 4  # None: the API's default slice size
    assert cfg.retry_deadline == 600.0
    assert _config(extra={"app_id": "1", "retry_deadline": "30"}).retry_deadline == 30.0
    assert "s3cr3tKEY" not in repr(cfg)


def test_empty_host_is_tencent_endpoint_and_v2_uses_region() -> None:
    assert _config(host=None).endpoint == "http://web.file.myqcloud.com"
    cfg = _config(host="", extra={"app_id": "1250000000", "api_version": "v2", "region": "shanghai"})
    assert cfg.endpoint == "http://sh.file.myqcloud.com"


def test_uri_style_host_and_port_and_legacy_prefixed_extras() -> None:
    cfg = _config(
        host="127.0.0.1",
        port=8089,
        schema="",
        extra=json.dumps({"extra__cos__app_id": "1250000000", "extra__cos__slice_size": "2097152"}),
    )
    assert cfg.endpoint == "http://127.0.0.1:8089"
    assert cfg.slice_size == 2 * 1024 * 1024


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"extra": {"bucket": "b"}}, "'app_id' is required"),
        ({"extra": {"app_id": "12ab"}}, "'app_id'"),
        ({"extra": {"app_id": "1", "api_version": "v3"}}, "'api_version'"),
        ({"host": "ftp://127.0.0.1"}, "host (endpoint base URL)"),
        ({"host": "http://exa mple.com"}, "host (endpoint base URL)"),
        ({"host": "http://127.0.0.1:99999"}, "host (endpoint base URL)"),
        ({"extra": {"app_id": "1", "bucket": "Bad_Bucket"}}, "'bucket'"),
        ({"extra": {"app_id": "1", "slice_size": "big"}}, "'slice_size'"),
        ({"extra": {"app_id": "1", "slice_size": 100000}}, "'slice_size' = 100000 is not a multiple of 65536"),
        (
            {"extra": {"app_id": "1", "api_version": "xml", "region": "guangzhou-x"}},
            "'region': region 'guangzhou-x' is not",
        ),
        ({"extra": {"app_id": "1", "api_version": "xml", "region": "nj"}}, "'region': region 'nj' is not a COS region"),
        ({"extra": {"app_id": "1", "max_workers": 0}}, "'max_workers'"),
        ({"extra": {"app_id": "1", "slice_size": "inf"}}, "'slice_size' must be a finite number"),
        ({"extra": {"app_id": "1", "max_workers": "nan"}}, "'max_workers' must be a finite number"),
        ({"extra": {"app_id": "1", "connect_timeout": "nan"}}, "'connect_timeout' must be a finite number"),
        ({"extra": {"app_id": "1", "read_timeout": "-inf"}}, "'read_timeout' must be a finite number"),
        ({"extra": {"app_id": "1", "retry_deadline": 0}}, "'retry_deadline'"),
        ({"extra": {"app_id": "1", "retry_deadline": "inf"}}, "'retry_deadline' must be a finite number"),
        ({"extra": "{not json"}, "extra is not valid JSON"),
        ({"login": ""}, "SecretId"),
        ({"password": None}, "SecretKey"),
    ],
)
def test_bad_connections_name_the_field(overrides: dict, message: str) -> None:
    with pytest.raises(CosConfigError) as info:
        _config(**overrides)
    assert message in str(info.value)


def test_hook_init_does_no_io_and_errors_at_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = CosHook("cos_missing_appid")  # no connection exists yet: __init__ must not look it up
    monkeypatch.setenv(
        "AIRFLOW_CONN_COS_MISSING_APPID",
        json.dumps({"conn_type": "cos", "login": "AKID", "password": "k", "host": "http://127.0.0.1:1", "extra": {}}),
    )
    with pytest.raises(CosConfigError, match="'app_id' is required"):
        hook.stat("/x")
    ok, message = hook.test_connection()
    assert ok is False and "app_id" in message


def test_missing_default_bucket_is_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_COS_NOBUCKET",
        json.dumps({"conn_type": "cos", "login": "AKID", "password": "k", "extra": {"app_id": "1250000000"}}),
    )
    with pytest.raises(CosConfigError, match="no bucket given"):
        CosHook("cos_nobucket").stat("/x")


@pytest.mark.parametrize(
    ("host", "port", "endpoint"),
    [
        ("http://127.0.0.1", 8089, "http://127.0.0.1:8089"),  # scheme in host, port in its own field
        ("http://127.0.0.1:8089", 8089, "http://127.0.0.1:8089"),  # both, agreeing
        ("http://127.0.0.1:8089", None, "http://127.0.0.1:8089"),
        ("http://127.0.0.1:8089", 0, "http://127.0.0.1:8089"),  # 0 = no port (what Airflow 3.3.2's UI sends)
        ("https://cos.example.com/prefix", 8443, "https://cos.example.com:8443/prefix"),
        ("https://cos.example.com", 443, "https://cos.example.com"),  # the scheme's own port adds nothing
        ("http://[::1]", 8089, "http://[::1]:8089"),
        ("127.0.0.1", 8089, "http://127.0.0.1:8089"),  # URI-style split
        (None, 80, "http://web.file.myqcloud.com"),  # Tencent's endpoint is plain http on port 80
    ],
)
def test_port_field_is_the_endpoints_port(host: str | None, port: int | None, endpoint: str) -> None:
    assert _config(host=host, port=port).endpoint == endpoint


@pytest.mark.parametrize(
    ("host", "port", "names"),
    [
        ("http://127.0.0.1:8089", 9000, ["8089", "9000", "host", "port"]),
        (None, 8089, ["8089", "port", "host is empty"]),
        ("http://127.0.0.1", 70000, ["70000", "port"]),
        ("http://127.0.0.1", -1, ["-1", "port"]),
    ],
)
def test_conflicting_or_bad_port_is_refused_naming_both(host: str | None, port: int, names: list[str]) -> None:
    with pytest.raises(CosConfigError) as info:
        _config(host=host, port=port)
    for name in names:
        assert name in str(info.value)


def test_field_table_defaults_are_the_engines() -> None:
    """The form's defaults and the engine's (used without a connection) are the same numbers."""
    from airflow_provider_cos.hooks.connection import FIELDS_BY_NAME
    from airflow_provider_cos.transfer import RetryPolicy, TransferConfig

    engine, retry = TransferConfig(), RetryPolicy()
    defaults = {name: f.default for name, f in FIELDS_BY_NAME.items()}
    assert defaults["retry_deadline"] == retry.deadline
    assert defaults["max_retries"] == retry.max_attempts - 1
    for name in ("slice_size", "max_workers", "simple_threshold", "connect_timeout", "read_timeout"):
        assert defaults[name] == getattr(engine, name), name


def test_bucket_with_its_appid_suffix_is_refused_with_the_plain_name() -> None:
    """The console and the XML API show ``examplebucket-1250000000``; pasted as is, every call used to
    answer "bucket not found" with no hint. The edge names the suffix and the plain name to write."""
    with pytest.raises(CosConfigError) as info:
        _config(extra={"app_id": "1250000000", "bucket": "examplebucket-1250000000"})
    assert "'bucket'" in str(info.value) and "'-1250000000'" in str(info.value)
    assert "'examplebucket'" in str(info.value)
    cfg = _config()
    with pytest.raises(CosConfigError) as info:
        cfg.resolve_bucket("other-1250000000")  # a task's bucket= argument
    assert "'-1250000000'" in str(info.value) and "'other'" in str(info.value)
    assert cfg.resolve_bucket("other-1250000001") == "other-1250000001"  # another account's number: a name
