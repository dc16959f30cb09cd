"""XML API custom domains (a domain bound to one bucket, as COS binds a CDN or bucket domain): routing by
``Host``, the signature over that ``Host``, the answer for a name nobody bound, and how a binding enters
(constructor, ``/_emulator/settings``, the CLI flag). Real sockets throughout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_cos.emulator import DEMO, BucketConfig, CosEmulator
from airflow_provider_cos.emulator.xmlapi import UNBOUND_DOMAIN
from airflow_provider_cos.protocol.errors import CosConfigError, CosError, CosNotFoundError
from airflow_provider_cos.protocol.xmlmessages import parse_error_body
from airflow_provider_cos.protocol.xmloperations import XmlRequest
from airflow_provider_cos.protocol.xmlsigning import XmlCredentials, XmlSigner
from tests.emulator.client import raw_http
from tests.emulator.xmlclient import XmlClient
from tests.support.emulator_cli import emulator_command

OTHER = BucketConfig("1250000001", "otherbucket", "AKIDotherBucketIdNotReal0000000000000", "other-bucket-key")
OTHER_NAME = f"{OTHER.bucket}-{OTHER.appid}"
DOMAIN = "files.example.com"


@pytest.fixture
def emu(emulator_factory: Any) -> CosEmulator:
    """Two buckets; the custom domain is bound to the second, so the default bucket can never pass for it."""
    emulator: CosEmulator = emulator_factory(extra_buckets=[OTHER], custom_domains={DOMAIN: OTHER_NAME})
    return emulator


def _put(client: XmlClient, key: str, data: bytes) -> None:
    client.call("put_object", key, len(data), data=data)


def test_a_bound_domain_is_its_bucket(emu: CosEmulator) -> None:
    via_domain = XmlClient(emu.url, OTHER, custom_domain=DOMAIN)
    _put(via_domain, "d/a.txt", b"through the custom domain")
    assert XmlClient(emu.url, OTHER).call("get_object", "d/a.txt").data == b"through the custom domain"
    with pytest.raises(CosNotFoundError):
        XmlClient(emu.url).call("head_object", "d/a.txt")  # not in the default bucket
    for host in ("FILES.Example.COM", f"{DOMAIN}:8443"):  # the name, whatever its case or port
        assert XmlClient(emu.url, OTHER, custom_domain=host).call("head_object", "d/a.txt").size == 25
    listing = via_domain.call("get_bucket", prefix="d/")
    assert listing.name == OTHER_NAME and [e.key for e in listing.contents] == ["d/a.txt"]
    # the path is the key: a path naming a bucket is not path style under a custom domain
    _put(via_domain, f"{DEMO.bucket}-{DEMO.appid}/x.txt", b"x")
    assert XmlClient(emu.url, OTHER).call("head_object", f"{DEMO.bucket}-{DEMO.appid}/x.txt").size == 1
    via_domain.call("delete_object", "d/a.txt")
    with pytest.raises(CosNotFoundError):
        XmlClient(emu.url, OTHER).call("head_object", "d/a.txt")


def test_the_signature_covers_the_custom_domain(emu: CosEmulator) -> None:
    signer = XmlSigner(XmlCredentials(OTHER.secret_id, OTHER.secret_key))
    signed_for_vhost = signer.sign_headers("GET", "/", [], {"Host": f"{OTHER_NAME}.cos.ap-guangzhou.myqcloud.com"})
    resp = requests.get(emu.url + "/", headers={**signed_for_vhost, "Host": DOMAIN}, timeout=10)
    assert resp.status_code == 403 and _code(resp) == "SignatureDoesNotMatch"
    signed = signer.sign_headers("GET", "/", [], {"Host": DOMAIN})
    assert requests.get(emu.url + "/", headers=signed, timeout=10).status_code == 200
    demo_signer = XmlSigner(XmlCredentials(DEMO.secret_id, DEMO.secret_key))  # the other bucket's key pair
    resp = requests.get(emu.url + "/", headers=demo_signer.sign_headers("GET", "/", [], {"Host": DOMAIN}), timeout=10)
    assert resp.status_code == 403 and _code(resp) == "InvalidAccessKeyId"


def _code(resp: requests.Response) -> str:
    parsed = parse_error_body(resp.content)
    assert parsed is not None, resp.content[:300]
    return parsed.code


def test_an_unbound_domain_is_refused_not_served_from_the_default_bucket(emu: CosEmulator) -> None:
    _put(XmlClient(emu.url), "a.txt", b"default bucket")
    unbound = XmlClient(emu.url, custom_domain="unbound.example.com")
    resp = unbound.send(XmlRequest("GetObject", "GET", "a.txt"))
    assert resp.status_code == 421 and _code(resp) == UNBOUND_DOMAIN
    parsed = parse_error_body(resp.content)
    assert parsed is not None and "--custom-domain unbound.example.com=<bucket>-<appid>" in parsed.message
    with pytest.raises(CosError) as err:  # HEAD has no body: the status alone must not read as "absent"
        unbound.call("head_object", "a.txt")
    assert err.value.status == 421 and not isinstance(err.value, CosNotFoundError)
    with pytest.raises(CosError, match=UNBOUND_DOMAIN):
        _put(unbound, "b.txt", b"never stored")
    assert [e.key for e in XmlClient(emu.url).call("get_bucket").contents] == ["a.txt"]


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:{port}",
        "localhost:{port}",
        "[::1]:{port}",
        "cos-emulator:{port}",  # a container's name
        "cos.ap-guangzhou.myqcloud.com",  # the service endpoint
    ],
)
def test_the_emulators_own_addresses_keep_the_default_bucket(emu: CosEmulator, host: str) -> None:
    _put(XmlClient(emu.url), "a.txt", b"default")
    host = host.format(port=emu.port)
    signer = XmlSigner(XmlCredentials(DEMO.secret_id, DEMO.secret_key))
    resp = requests.get(
        emu.url + "/a.txt", headers=signer.sign_headers("GET", "/a.txt", [], {"Host": host}), timeout=10
    )
    assert resp.status_code == 200 and resp.content == b"default"


def test_no_host_header_is_the_default_bucket(emu: CosEmulator) -> None:
    answer = raw_http(emu.url, b"GET /a.txt HTTP/1.0\r\n\r\n")  # HTTP/1.0 without Host: unsigned, so 403
    assert answer.startswith(b"HTTP/1.1 403") and b"AccessDenied" in answer


def test_bindings_change_at_runtime_through_the_settings(emu: CosEmulator) -> None:
    url = emu.url + "/_emulator/settings"
    resp = requests.post(url, json={"custom_domains": {"CDN.Example.org": f"{DEMO.bucket}-{DEMO.appid}"}}, timeout=10)
    assert resp.status_code == 200
    assert resp.json()["data"]["custom_domains"] == {"cdn.example.org": f"{DEMO.bucket}-{DEMO.appid}"}
    _put(XmlClient(emu.url, custom_domain="cdn.example.org"), "cdn.txt", b"cdn")
    assert XmlClient(emu.url).call("get_object", "cdn.txt").data == b"cdn"
    with pytest.raises(CosError, match=UNBOUND_DOMAIN):  # replaced as a whole: the first binding is gone
        XmlClient(emu.url, OTHER, custom_domain=DOMAIN).call("get_bucket")
    for bad, words in (
        ({"https://x.example.com": OTHER_NAME}, "custom domain must be a host name"),
        ({"x.example.com": "otherbucket"}, "'<bucket>-<appid>'"),
        (["x.example.com"], "custom_domains must map"),
    ):
        resp = requests.post(url, json={"custom_domains": bad}, timeout=10)
        assert resp.status_code == 400 and words in resp.json()["message"], resp.text
    # a binding to a bucket this emulator does not serve: refused when used, naming both
    requests.post(url, json={"custom_domains": {"gone.example.com": "gone-1250000009"}}, timeout=10)
    resp = XmlClient(emu.url, custom_domain="gone.example.com").send(XmlRequest("GetObject", "GET", "a.txt"))
    assert resp.status_code == 404 and _code(resp) == "NoSuchBucket"
    assert b"gone.example.com is bound to gone-1250000009" in resp.content


@pytest.mark.parametrize(
    ("bindings", "words"),
    [
        ({DOMAIN: "nosuch-1250000000"}, f"{DOMAIN} is bound to nosuch-1250000000, which this emulator does not serve"),
        ({"files.example.com:80": OTHER_NAME}, "no scheme, port or path"),
    ],
)
def test_the_constructor_checks_the_bindings(tmp_path: Path, bindings: dict[str, str], words: str) -> None:
    with pytest.raises(CosConfigError, match="custom_domains") as err:
        CosEmulator(data_dir=tmp_path, custom_domains=bindings)
    assert words in err.value.message


def test_cli_flag_binds_a_domain(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        emulator_command(
            tmp_path,
            *("--custom-domain", f"{DOMAIN}={DEMO.bucket}-{DEMO.appid}"),
            *("--custom-domain", f"Static.Example.net={DEMO.bucket}-{DEMO.appid}"),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        url = proc.stdout.readline().strip()
        help_line = proc.stderr.readline()
        assert f"'Host: {DOMAIN}' ({DEMO.bucket}-{DEMO.appid})" in help_line, help_line
        assert "'Host: static.example.net'" in help_line
        _put(XmlClient(url, custom_domain=DOMAIN), "cli.txt", b"cli")
        assert XmlClient(url, custom_domain="static.example.net").call("get_object", "cli.txt").data == b"cli"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("files.example.com", "expected DOMAIN=BUCKET-APPID"),
        ("files.example.com=examplebucket", "'<bucket>-<appid>'"),
        ("https://files.example.com=examplebucket-1250000000", "custom domain must be a host name"),
        ("files.example.com=otherbucket-1250000001", "which this emulator does not serve"),
    ],
)
def test_cli_bad_custom_domain_names_the_flag(value: str, words: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "airflow_provider_cos.emulator", "--port", "0", "--custom-domain", value],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and out.stdout == ""
    assert "argument --custom-domain" in out.stderr and words in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
