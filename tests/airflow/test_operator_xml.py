"""CosSliceUploadOperator with an ``xml`` connection: the same DAG, XCom with etag/crc64, link, asset, lineage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_provider_cos.emulator import DEMO
from airflow_provider_cos.hooks.cos import CosHook
from airflow_provider_cos.operators.cos import CosSliceUploadOperator
from airflow_provider_cos.protocol.crc64 import Crc64
from tests.airflow.conftest import MiB, make_file, run_dag, task_states

START = pendulum.datetime(2024, 1, 1, tz="UTC")


@pytest.mark.usefixtures("airflow_db")
def test_xml_upload_xcom_link_and_asset_event(cos_conns: Any, tmp_path: Path) -> None:
    from airflow_provider_cos.links import CosObjectLink

    src = make_file(tmp_path / "big.bin", 3 * MiB + 5)
    with DAG("cos_test_xml_xcom", schedule=None, start_date=START, catchup=False) as dag:
        CosSliceUploadOperator(
            task_id="upload",
            cos_conn_id="cos_xml",
            local_path=str(src),
            cos_path="/x/big.bin",
            bucket=DEMO.bucket,
            app_id=DEMO.appid,
        )
    run = run_dag(dag)
    assert task_states(run) == {"upload": "success"}
    ti = run.get_task_instances()[0]
    values = {
        key: ti.xcom_pull(task_ids="upload", key=key)
        for key in ("return_value", "access_url", "url", "sha1", "size", "etag", "crc64")
    }
    crc = Crc64(src.read_bytes()).decimal()
    assert values["return_value"] == f"/{DEMO.appid}/{DEMO.bucket}/x/big.bin"  # as on v1
    # pushed as the decimal string; Airflow's XCom returns a numeric string as a number
    assert values["size"] == src.stat().st_size and str(values["crc64"]) == crc and values["etag"]
    link = ti.xcom_pull(task_ids="upload", key=CosObjectLink().xcom_key)
    assert link == f"{cos_conns.url}/x/big.bin"
    head = CosHook("cos_xml").stat("/x/big.bin")
    # Airflow's XCom returns the quoted ETag as parsed JSON: without its quotes
    assert head is not None and head["crc64"] == crc and head["etag"].strip('"') == values["etag"].strip('"')

    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(select(AssetEvent).where(AssetEvent.source_dag_id == "cos_test_xml_xcom")).all()
        assert [(e.uri, str(e.extra["crc64"])) for e in events] == [
            (f"cos://{DEMO.bucket}-{DEMO.appid}/x/big.bin", crc)
        ]


def test_openlineage_for_xml(cos_conns: Any) -> None:
    pytest.importorskip("airflow.providers.openlineage")
    op = CosSliceUploadOperator(task_id="t", cos_conn_id="cos_xml", local_path="/tmp/a.bin", cos_path="/a/b.bin")
    lineage = op.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.outputs] == [(f"cos://{DEMO.bucket}-{DEMO.appid}", "a/b.bin")]
