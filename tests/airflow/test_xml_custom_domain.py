"""An ``xml`` connection with a ``custom_domain``, end to end over real sockets.

The connection's host is the TCP route to the emulator; ``custom_domain`` is the ``Host`` and what is signed.
The emulator binds ``files.example.com`` to ``otherbucket`` - not its default bucket, so a request routed
by anything but the domain would land elsewhere. The route goes through :class:`FaultProxy` without
faults: a plain forwarder that records each request head as it crossed the wire, so the test sees the
``Host`` the emulator received.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_provider_cos.emulator import DEMO, CosEmulator
from airflow_provider_cos.emulator.xmlapi import UNBOUND_DOMAIN
from airflow_provider_cos.hooks.cos import CosHook
from airflow_provider_cos.protocol.errors import CosConfigError, CosError, CosNotFoundError
from airflow_provider_cos.protocol.messages import CosTarget
from airflow_provider_cos.protocol.signing import Credentials
from airflow_provider_cos.transfer import CosClient, TransferConfig
from tests.airflow.conftest import TEST_EXTRA, MiB, make_file, run_dag, task_states
from tests.airflow.test_xml_connection import config
from tests.emulator.xmlclient import XmlClient
from tests.support.custom_domain import DOMAIN, OTHER, host_of  # fixtures bound, proxy: conftest.py
from tests.support.faultproxy import FaultProxy

DEFAULT_VHOST = f"{DEMO.bucket}-{DEMO.appid}.cos.ap-guangzhou.myqcloud.com"
START = pendulum.datetime(2024, 1, 1, tz="UTC")


def wire_hosts(proxy: FaultProxy) -> dict[str, set[str]]:
    """``{Host header: request methods}`` of every request the proxy forwarded."""
    seen: dict[str, set[str]] = {}
    for record in proxy.records:
        seen.setdefault(host_of(record), set()).add(record.method)
    return seen


def set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, host: str, **extra: Any) -> None:
    value = {
        "conn_type": "cos",
        "login": DEMO.secret_id,
        "password": DEMO.secret_key,
        "host": host,
        "extra": {"app_id": DEMO.appid, "bucket": OTHER.bucket, "api_version": "xml", **TEST_EXTRA, **extra},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value))


@pytest.fixture
def cdn_conn(proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch) -> str:
    set_conn(monkeypatch, "cos_cdn", proxy.url, custom_domain=f"https://{DOMAIN}/")
    return "cos_cdn"


def test_hook_round_trip_through_the_custom_domain(
    bound: CosEmulator, proxy: FaultProxy, cdn_conn: str, tmp_path: Path
) -> None:
    small = make_file(tmp_path / "small.bin", 1000, seed=1)
    big = make_file(tmp_path / "big.bin", 3 * MiB + 123, seed=2)
    hook = CosHook(cdn_conn)
    simple = hook.upload_file(str(small), "/cdn/small.bin")
    multi = hook.upload_file(str(big), "/cdn/deep/big.bin")
    assert (simple.method, multi.method, multi.slices_sent) == ("simple", "multipart", 4)
    assert multi.access_url == multi.source_url == f"https://{DOMAIN}/cdn/deep/big.bin"
    assert multi.url == f"{proxy.url}/cdn/deep/big.bin"  # where the requests went

    stat = hook.stat("/cdn/deep/big.bin")
    assert stat is not None and stat["filesize"] == big.stat().st_size and stat["crc64"] == multi.crc64
    assert hook.exists("/cdn/small.bin") and not hook.exists("/cdn/missing.bin")
    assert {(e["name"], e["is_folder"]) for e in hook.list("/cdn/")} == {("small.bin", False), ("deep", True)}
    for cos_path, src in (("/cdn/small.bin", small), ("/cdn/deep/big.bin", big)):
        out = tmp_path / f"down-{src.name}"
        assert hook.download_file(cos_path, str(out)).size == src.stat().st_size
        assert out.read_bytes() == src.read_bytes()

    # the objects are in the bound bucket, the default bucket got nothing
    assert XmlClient(bound.url, OTHER).call("head_object", "cdn/deep/big.bin").size == big.stat().st_size
    assert XmlClient(bound.url).call("get_bucket").contents == ()
    hook.delete("/cdn/small.bin")
    hook.delete("/cdn/deep/big.bin")
    assert not hook.exists("/cdn/small.bin") and not hook.exists("/cdn/deep/big.bin")
    hook.close()

    # every request carried the custom domain as its Host: puts, parts, Complete, heads, gets, deletes
    assert wire_hosts(proxy) == {DOMAIN: {"PUT", "POST", "HEAD", "GET", "DELETE"}}
    requests = bound.stats.requests
    assert requests["UploadPart"] == 4 and requests["CompleteMultipartUpload"] == 1 and requests["PutObject"] == 1


def test_another_bucket_goes_to_its_own_virtual_host(
    bound: CosEmulator, proxy: FaultProxy, cdn_conn: str, tmp_path: Path
) -> None:
    src = make_file(tmp_path / "s.bin", 500)
    hook = CosHook(cdn_conn)
    result = hook.upload_file(str(src), "/elsewhere.bin", bucket=DEMO.bucket)
    assert result.access_url == f"https://{DEFAULT_VHOST}/elsewhere.bin"
    assert XmlClient(bound.url).call("head_object", "elsewhere.bin").size == 500  # the default bucket
    with pytest.raises(CosNotFoundError):
        XmlClient(bound.url, OTHER).call("head_object", "elsewhere.bin")
    assert wire_hosts(proxy) == {DEFAULT_VHOST: {"PUT", "HEAD"}}  # PutObject, then the verify HEAD
    hook.close()


def test_an_unbound_domain_is_a_clear_error_not_another_bucket(
    emulator: CosEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # the emulator serves only its default bucket and binds nothing; the connection names that bucket
    set_conn(monkeypatch, "cos_unbound", emulator.url, bucket=DEMO.bucket, custom_domain=DOMAIN)
    XmlClient(emulator.url).call("put_object", "there.bin", 3, data=b"abc")
    hook = CosHook("cos_unbound")
    with pytest.raises(CosError) as err:  # a HEAD: no body, yet not "absent"
        hook.stat("/there.bin")
    assert err.value.status == 421 and not isinstance(err.value, CosNotFoundError)
    assert "HTTP 421 Misdirected Request" in str(err.value)
    src = make_file(tmp_path / "s.bin", 700)
    with pytest.raises(CosError, match=f"{UNBOUND_DOMAIN}: Host {DOMAIN} is neither") as err:
        hook.upload_file(str(src), "/new.bin")
    assert f"--custom-domain {DOMAIN}=<bucket>-<appid>" in str(err.value)
    ok, message = hook.test_connection()
    assert not ok and UNBOUND_DOMAIN in message and f"(xml, custom domain {DOMAIN})" in message, message
    assert [e.key for e in XmlClient(emulator.url).call("get_bucket").contents] == ["there.bin"]
    hook.close()


@pytest.mark.usefixtures("airflow_db")
def test_operator_xcom_and_link_use_the_custom_domain(bound: CosEmulator, cdn_conn: str, tmp_path: Path) -> None:
    from airflow_provider_cos.links import CosObjectLink
    from airflow_provider_cos.operators.cos import CosSliceUploadOperator

    src = make_file(tmp_path / "a b.bin", 2 * MiB + 9)
    with DAG("cos_test_custom_domain", schedule=None, start_date=START, catchup=False) as dag:
        CosSliceUploadOperator(task_id="upload", cos_conn_id=cdn_conn, local_path=str(src), cos_path="/x/a b.bin")
    run = run_dag(dag)
    assert task_states(run) == {"upload": "success"}
    ti = run.get_task_instances()[0]
    public = f"https://{DOMAIN}/x/a%20b.bin"
    assert ti.xcom_pull(task_ids="upload", key="access_url") == public
    assert ti.xcom_pull(task_ids="upload", key="source_url") == public
    assert ti.xcom_pull(task_ids="upload", key=CosObjectLink().xcom_key) == public
    assert ti.xcom_pull(task_ids="upload", key="return_value") == f"/{DEMO.appid}/{OTHER.bucket}/x/a b.bin"
    assert XmlClient(bound.url, OTHER).call("head_object", "x/a b.bin").size == src.stat().st_size


def test_custom_domain_needs_the_bucket_it_is_bound_to() -> None:
    with pytest.raises(CosConfigError, match=r"'custom_domain' .* is bound to one bucket: set extra field 'bucket'"):
        config(extra={"bucket": "", "custom_domain": DOMAIN})


def test_client_with_a_custom_domain(bound: CosEmulator, proxy: FaultProxy, tmp_path: Path) -> None:
    """The engine alone (no Airflow): ``CosTarget(custom_domain=...)`` with the emulator as endpoint."""
    src = make_file(tmp_path / "c.bin", 1500)
    target = CosTarget(proxy.url, "xml", DEMO.appid, OTHER.bucket, region="ap-guangzhou", custom_domain=DOMAIN)
    with CosClient(
        target=target, credentials=Credentials(DEMO.secret_id, DEMO.secret_key), config=TransferConfig()
    ) as c:
        c.upload_file(str(src), "/c.bin")
        assert c.head("/c.bin") is not None and [i.name for i in c.list("/")] == ["c.bin"]
        c.delete("/c.bin")
        assert c.stat("/c.bin") is None
    assert set(wire_hosts(proxy)) == {DOMAIN}
