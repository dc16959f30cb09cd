"""The ``xml`` connection: region names, the default endpoint, host overriding only the TCP destination,
the session token; and CosHook's operations for xml against the emulator over real sockets."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cos.emulator import DEMO
from airflow_provider_cos.hooks.connection import CosConnectionConfig
from airflow_provider_cos.hooks.cos import CosHook
from airflow_provider_cos.protocol.crc64 import Crc64
from airflow_provider_cos.protocol.errors import CosConfigError
from airflow_provider_cos.protocol.messages import CosTarget
from airflow_provider_cos.protocol.xmloperations import XML, encode_xml_request
from airflow_provider_cos.protocol.xmlsigning import XmlCredentials, XmlSigner
from airflow_provider_cos.transfer.xmlcalls import xml_target
from tests.airflow.conftest import MiB, make_file


def config(**kw: Any) -> CosConnectionConfig:
    extra = {"app_id": "1250000000", "bucket": "examplebucket", "api_version": "xml", **kw.pop("extra", {})}
    kw.setdefault("host", None)
    return CosConnectionConfig.from_values(conn_id="c", login="AKID", password="KEY", extra=extra, **kw)


def target_of(cfg: CosConnectionConfig) -> CosTarget:
    return CosTarget(cfg.endpoint, cfg.api_version, cfg.appid, cfg.bucket or "", region=cfg.region)


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        (None, "ap-guangzhou"),
        ("ap-shanghai", "ap-shanghai"),
        ("gz", "ap-guangzhou"),
        ("sh", "ap-shanghai"),
        ("na-siliconvalley", "na-siliconvalley"),
        ("ap-shenzhen-fsi", "ap-shenzhen-fsi"),
        ("tj", "ap-beijing-1"),
    ],
)
def test_default_endpoint_is_the_buckets_virtual_host(region: str | None, expected: str) -> None:
    cfg = config(extra={"region": region} if region else {})
    assert cfg.endpoint == f"https://cos.{expected}.myqcloud.com"
    xml = xml_target(target_of(cfg))
    assert xml.host == f"examplebucket-1250000000.cos.{expected}.myqcloud.com"
    assert (
        xml.url(XML.prepare_head_object("a/b.txt"))
        == f"https://examplebucket-1250000000.cos.{expected}.myqcloud.com/a/b.txt"
    )


def test_host_overrides_only_where_the_connection_goes() -> None:
    cfg = config(host="http://127.0.0.1", port=8089, extra={"region": "ap-beijing"})
    xml = xml_target(target_of(cfg))
    request = encode_xml_request(xml, XML.prepare_head_object("a b.txt"), XmlSigner(XmlCredentials("AKID", "KEY")))
    assert request.url == "http://127.0.0.1:8089/a%20b.txt"  # the TCP destination...
    assert request.headers["Host"] == "examplebucket-1250000000.cos.ap-beijing.myqcloud.com"  # ...the rest is prod's
    assert "host" in request.headers["Authorization"]


def test_session_token_is_sent_and_never_shown() -> None:
    cfg = config(extra={"security_token": "TOKEN-123456"})
    assert cfg.security_token == "TOKEN-123456" and "TOKEN" not in repr(cfg)


def test_bad_api_version_names_the_choices() -> None:
    with pytest.raises(CosConfigError, match="'v1', 'v2' or 'xml'"):
        config(extra={"api_version": "v3"})


def test_port_on_the_default_xml_endpoint() -> None:
    assert config(port=443).endpoint.startswith("https://cos.")
    with pytest.raises(CosConfigError, match="uses port 443"):
        config(port=8080)


# -------------------------------------------------------------------------------- hook, real sockets


def crc_of(path: Path) -> str:
    c = Crc64()
    c.update(path.read_bytes())
    return c.decimal()


def test_hook_upload_stat_list_delete(cos_conns: Any, tmp_path: Path) -> None:
    src = make_file(tmp_path / "a.bin", 3 * MiB + 123)
    hook = CosHook("cos_xml")
    result = hook.upload_file(str(src), "/deep/er/a.bin")
    assert result.resource_path == f"/{DEMO.appid}/{DEMO.bucket}/deep/er/a.bin"  # the v1 form, for old DAGs
    assert result.method == "multipart" and result.slices_sent == 4
    assert result.crc64 == crc_of(src) and result.etag
    assert result.access_url == f"https://{DEMO.bucket}-{DEMO.appid}.cos.ap-guangzhou.myqcloud.com/deep/er/a.bin"

    stat = hook.stat("/deep/er/a.bin")
    assert stat is not None and stat["filesize"] == src.stat().st_size and stat["crc64"] == result.crc64
    assert stat["etag"] == result.etag and stat["complete"] is True
    assert hook.exists("/deep/er/a.bin") and hook.is_upload_complete("/deep/er/a.bin")
    assert hook.stat("/deep/er/missing.bin") is None and not hook.exists("/deep/er/missing.bin")

    assert hook.create_folder("/deep/sub/") is True
    assert hook.create_folder("/deep/sub/") is False  # exist_ok
    assert hook.stat("/deep/sub/")["is_folder"] is True
    names = {(e["name"], e["is_folder"]) for e in hook.list("/deep/")}
    assert names == {("er", True), ("sub", True)}
    assert [e["name"] for e in hook.list("/deep/er/")] == ["a.bin"]

    hook.delete("/deep/er/a.bin")
    assert not hook.exists("/deep/er/a.bin")
    hook.delete("/deep/sub/")
    assert hook.stat("/deep/sub/") is None
    hook.close()


def test_hook_test_connection_xml(cos_conns: Any) -> None:
    ok, message = CosHook("cos_xml").test_connection()
    assert ok, message


def test_small_file_simple_put(cos_conns: Any, tmp_path: Path) -> None:
    src = make_file(tmp_path / "s.bin", 1000)
    result = CosHook("cos_xml").upload_file(str(src), "/s.bin")
    assert result.method == "simple" and result.etag == f'"{hashlib.md5(src.read_bytes()).hexdigest()}"'


def target_with_domain(cfg: CosConnectionConfig) -> CosTarget:
    return CosTarget(
        cfg.endpoint, cfg.api_version, cfg.appid, cfg.bucket or "", region=cfg.region, custom_domain=cfg.custom_domain
    )


def test_custom_domain_is_the_host_the_signature_and_the_url() -> None:
    cfg = config(extra={"custom_domain": "https://files.example.com/"})
    assert cfg.custom_domain == "files.example.com"
    xml = xml_target(target_with_domain(cfg))
    request = encode_xml_request(xml, XML.prepare_head_object("a.txt"), XmlSigner(XmlCredentials("AKID", "KEY")))
    assert request.url == "https://files.example.com/a.txt" and request.headers["Host"] == "files.example.com"
    # with a host as well, the host is still only where the TCP connection goes
    cfg = config(host="http://127.0.0.1:8089", extra={"custom_domain": "files.example.com"})
    request = encode_xml_request(
        xml_target(target_with_domain(cfg)), XML.prepare_head_object("a.txt"), XmlSigner(XmlCredentials("AKID", "KEY"))
    )
    assert request.url == "http://127.0.0.1:8089/a.txt" and request.headers["Host"] == "files.example.com"


@pytest.mark.parametrize("bad", ["files.example.com/path", "a b.com"])
def test_bad_custom_domain_names_the_field(bad: str) -> None:
    with pytest.raises(CosConfigError, match="custom_domain"):
        config(extra={"custom_domain": bad})
