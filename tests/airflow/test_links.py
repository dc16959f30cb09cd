"""The "COS object" extra link points at the object on the connection's endpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_provider_cos.emulator import DEMO
from airflow_provider_cos.hooks.connection import CosConnectionConfig
from airflow_provider_cos.links import CosObjectLink, object_link_url
from airflow_provider_cos.operators.cos import CosSliceUploadOperator
from tests.airflow.conftest import make_file, run_dag, task_states

START = pendulum.datetime(2024, 1, 1, tz="UTC")


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("conn_id", ["cos_default", "cos_v2"])
def test_link_points_at_the_object_on_the_configured_endpoint(cos_conns: Any, tmp_path: Path, conn_id: str) -> None:
    src = make_file(tmp_path / "s.bin", 1500)
    with DAG(f"cos_test_link_{conn_id}", schedule=None, start_date=START, catchup=False) as dag:
        CosSliceUploadOperator(task_id="upload", cos_conn_id=conn_id, local_path=str(src), cos_path="/x/a b.bin")
    run = run_dag(dag)
    assert task_states(run) == {"upload": "success"}
    ti = run.get_task_instances()[0]
    link = ti.xcom_pull(task_ids="upload", key=CosObjectLink().xcom_key)
    version = "v1" if conn_id == "cos_default" else "v2"
    assert link == f"{cos_conns.url}/files/{version}/{DEMO.appid}/{DEMO.bucket}/x/a%20b.bin"
    # the service's access_url names Tencent's download domain, not the emulator the object is on
    assert "myqcloud.com" in ti.xcom_pull(task_ids="upload", key="access_url")


def _config(host: str | None) -> CosConnectionConfig:
    return CosConnectionConfig.from_values(
        conn_id="c", login="id", password="key", host=host, extra={"app_id": DEMO.appid}
    )


def test_on_tencent_the_link_is_the_access_url() -> None:
    access_url = f"http://{DEMO.bucket}-{DEMO.appid}.file.myqcloud.com/x/a%20b.bin"
    for host in (None, "http://sh.file.myqcloud.com"):
        assert object_link_url(_config(host), DEMO.bucket, "/x/a b.bin", access_url) == access_url
    # elsewhere (emulator, proxy, private deployment) the object's URL on that endpoint
    assert (
        object_link_url(_config("https://cos.example.internal:8443/"), DEMO.bucket, "/x/a b.bin", access_url)
        == f"https://cos.example.internal:8443/files/v1/{DEMO.appid}/{DEMO.bucket}/x/a%20b.bin"
    )
    # a host that only resembles Tencent's is not Tencent's
    assert object_link_url(_config("http://myqcloud.com.example.org"), DEMO.bucket, "/o", access_url).startswith(
        "http://myqcloud.com.example.org/files/v1/"
    )
