"""Interop through a custom domain: the official SDK (``qcloud_cos``) with ``Domain='files.example.com'`` and
this engine with ``custom_domain``, both reaching the emulator (where the domain is bound to a bucket that
is not the default one) through a proxy, real sockets.

The SDK's ``Proxies`` setting sends absolute-form request lines ``PUT http://files.example.com/<key>`` with
``Host: files.example.com``, signed over that host. The proxy is :class:`FaultProxy` without faults, a
plain forwarder that records each request head, so the tests see the ``Host`` that reached the emulator.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cos.emulator import DEMO, CosEmulator
from airflow_provider_cos.emulator.xmlapi import UNBOUND_DOMAIN
from airflow_provider_cos.protocol.messages import CosTarget
from airflow_provider_cos.protocol.signing import Credentials
from airflow_provider_cos.transfer import CosClient
from tests.emulator.xmlclient import XmlClient
from tests.support.custom_domain import DOMAIN, OTHER, OTHER_NAME, host_of  # fixtures bound, proxy: conftest.py
from tests.support.faultproxy import FaultProxy
from tests.transfer.conftest import MiB, small_config, write_file
from tests.transfer.test_multipart import crc_of

qcloud_cos = pytest.importorskip("qcloud_cos")


def sdk_for(proxy: FaultProxy, domain: str = DOMAIN) -> Any:
    conf = qcloud_cos.CosConfig(
        Region="ap-guangzhou",
        SecretId=DEMO.secret_id,
        SecretKey=DEMO.secret_key,
        Scheme="http",
        Domain=domain,
        Proxies={"http": proxy.url},
    )
    return qcloud_cos.CosS3Client(conf, retry=0)


@pytest.fixture
def ours(proxy: FaultProxy) -> Iterator[CosClient]:
    target = CosTarget(proxy.url, "xml", DEMO.appid, OTHER.bucket, region="ap-guangzhou", custom_domain=DOMAIN)
    client = CosClient(target=target, credentials=Credentials(DEMO.secret_id, DEMO.secret_key), config=small_config())
    yield client
    client.close()


def wire(proxy: FaultProxy) -> set[tuple[str, str]]:
    """``(request target's start, Host)`` of every forwarded request."""
    seen = set()
    for record in proxy.records:
        seen.add((record.target.split("/", 3)[2] if "://" in record.target else "", host_of(record)))
    return seen


def test_sdk_and_engine_share_objects_through_the_custom_domain(
    bound: CosEmulator, proxy: FaultProxy, ours: CosClient, tmp_path: Path
) -> None:
    sdk = sdk_for(proxy)
    put = sdk.put_object(Bucket=OTHER_NAME, Key="sdk/a.txt", Body=b"[Object Content]")
    assert put["ETag"] == '"ee8de918d05640145b18f70f4c3aa602"'
    assert sdk.get_object(Bucket=OTHER_NAME, Key="sdk/a.txt")["Body"].get_raw_stream().read() == b"[Object Content]"
    big = tmp_path / "sdk.bin"
    write_file(big, 3 * MiB + 77, seed=8)
    sdk.upload_file(Bucket=OTHER_NAME, Key="sdk/big.bin", LocalFilePath=str(big), PartSize=1, MAXThread=2)
    assert bound.stats.requests["CompleteMultipartUpload"] == 1  # the SDK's multipart upload

    # we read what the SDK wrote, and the SDK reads (with its CRC-64 check) what we wrote
    got = tmp_path / "got.bin"
    assert ours.download_file("/sdk/big.bin", str(got)).crc64 == crc_of(big)
    assert got.read_bytes() == big.read_bytes()
    mine = tmp_path / "mine.bin"
    write_file(mine, 2 * MiB + 5, seed=9)
    ours.upload_file(str(mine), "/ours/mine.bin")
    out = tmp_path / "out.bin"
    sdk.download_file(Bucket=OTHER_NAME, Key="ours/mine.bin", DestFilePath=str(out), EnableCRC=True)
    assert out.read_bytes() == mine.read_bytes()

    # all of it in the bound bucket; none in the default bucket
    keys = [e.key for e in XmlClient(bound.url, OTHER).call("get_bucket").contents]
    assert keys == ["ours/mine.bin", "sdk/a.txt", "sdk/big.bin"]
    assert XmlClient(bound.url).call("get_bucket").contents == ()
    # on the wire: the SDK's absolute-form targets and our origin-form ones, every Host the custom domain
    assert wire(proxy) == {(DOMAIN, DOMAIN), ("", DOMAIN)}


def test_sdk_with_an_unbound_domain_gets_a_clear_error(bound: CosEmulator, proxy: FaultProxy) -> None:
    sdk = sdk_for(proxy, "unbound.example.com")
    with pytest.raises(qcloud_cos.CosServiceError) as err:
        sdk.put_object(Bucket=OTHER_NAME, Key="never.txt", Body=b"x")
    assert err.value.get_status_code() == 421 and err.value.get_error_code() == UNBOUND_DOMAIN
    assert "--custom-domain unbound.example.com" in err.value.get_error_msg()
    assert XmlClient(bound.url, OTHER).call("get_bucket").contents == ()
    assert XmlClient(bound.url).call("get_bucket").contents == ()
