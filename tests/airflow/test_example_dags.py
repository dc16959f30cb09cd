"""The example DAGs end to end with ``dag.test()`` against the emulator (v1 and v2, deferrable sensor)."""

from __future__ import annotations

import hashlib
import os
import random
from typing import Any

import pytest

from airflow_provider_cos.emulator import DEMO

pytestmark = pytest.mark.usefixtures("airflow_db")


def _dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import os as _os  # the DAGs folder the root conftest configured

    bag = DagBag(_os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert not bag.import_errors, bag.import_errors
    return bag


def _tis(dag_run: Any) -> dict[str, Any]:
    return {ti.task_id: ti for ti in dag_run.get_task_instances()}


def _expected_sha1(mib: int, seed: str) -> str:
    rng = random.Random(seed)
    digest = hashlib.sha1()
    for _ in range(mib):
        digest.update(rng.randbytes(1024 * 1024))
    return digest.hexdigest()


def test_example_dags_parse() -> None:
    bag = _dagbag()
    assert {"example_cos_slice_upload", "example_cos_v2_asset_producer", "example_cos_v2_asset_consumer"} <= set(
        bag.dags
    )
    upload = bag.dags["example_cos_slice_upload"].task_dict["upload"]
    assert upload.template_fields == ("local_path", "cos_path", "bucket", "biz_attr")
    producer = bag.dags["example_cos_v2_asset_producer"].task_dict["upload_report"]
    assert [a.uri for a in producer.outlets] == [f"cos://{DEMO.bucket}-{DEMO.appid}/reports/latest/report.bin"]


def test_example_slice_upload_v1(cos_conns: Any) -> None:
    from airflow.utils.state import DagRunState

    dag = _dagbag().dags["example_cos_slice_upload"]
    dag_run = dag.test(run_conf={"artifact_mib": 4})
    assert dag_run.state == DagRunState.SUCCESS
    tis = _tis(dag_run)
    assert all(ti.state == "success" for ti in tis.values()), {k: v.state for k, v in tis.items()}
    resource_path = tis["upload"].xcom_pull(task_ids="upload")
    assert resource_path.startswith(f"/{DEMO.appid}/{DEMO.bucket}/airflow-example/")
    assert resource_path.endswith("/artifact-4mib.bin")
    assert tis["check_object"].xcom_pull(task_ids="check_object") == resource_path
    # read back by that resource_path and compared byte for byte (the compare task raises otherwise)
    assert tis["read_back"].xcom_pull(task_ids="read_back", key="resource_path") == resource_path
    assert tis["read_back"].xcom_pull(task_ids="read_back", key="sha1") == _expected_sha1(4, "cos-example-4")
    assert tis["compare"].state == "success"
    assert tis["upload"].xcom_pull(task_ids="upload", key="size") == 4 * 1024 * 1024
    # the templated path is declared through an AssetAlias; the run adds the object's Asset to it
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    uri = f"cos://{DEMO.bucket}-{DEMO.appid}" + resource_path.split(f"/{DEMO.appid}/{DEMO.bucket}", 1)[1]
    with create_session() as session:
        events = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == uri, AssetEvent.source_run_id == dag_run.run_id)
        ).all()
        assert [e.extra["resource_path"] for e in events] == [resource_path]
    assert tis["upload"].xcom_pull(task_ids="upload", key="sha1") == _expected_sha1(4, "cos-example-4")
    assert tis["upload"].xcom_pull(task_ids="upload", key="access_url")
    stat = tis["wait_complete"].xcom_pull(task_ids="wait_complete")
    assert int(stat["filelen"]) == int(stat["filesize"]) == 4 * 1024 * 1024
    assert cos_conns.stats.slice_bytes == 4 * 1024 * 1024


def test_example_v2_asset_producer_and_consumer(cos_conns: Any) -> None:
    from airflow.utils.state import DagRunState

    bag = _dagbag()
    run = bag.dags["example_cos_v2_asset_producer"].test(run_conf={"report_mib": 3})
    assert run.state == DagRunState.SUCCESS, {k: v.state for k, v in _tis(run).items()}
    assert cos_conns.stats.requests.get("upload_slice_finish", 0) >= 1  # the v2 protocol was used
    consumer = bag.dags["example_cos_v2_asset_consumer"].test()
    assert consumer.state == DagRunState.SUCCESS
    stat = _tis(consumer)["inspect_report"].xcom_pull(task_ids="inspect_report")
    assert stat["sha"] == _expected_sha1(3, "cos-v2-report-3")


@pytest.mark.parametrize(
    ("dag_id", "conn_var", "upload_task", "cleanup_task", "conf"),
    [
        ("example_cos_slice_upload", "AIRFLOW_CONN_COS_DEFAULT", "upload", "cleanup", {"artifact_mib": 2}),
        ("example_cos_v2_asset_producer", "AIRFLOW_CONN_COS_V2", "upload_report", "cleanup", {"report_mib": 2}),
    ],
)
def test_a_failed_upload_fails_the_run(
    cos_conns: Any,
    monkeypatch: pytest.MonkeyPatch,
    dag_id: str,
    conn_var: str,
    upload_task: str,
    cleanup_task: str,
    conf: dict[str, int],
) -> None:
    """Users copy the examples: an upload that fails must fail the run, while the cleanup still runs."""
    from airflow.utils.state import DagRunState

    from tests.airflow.conftest import conn_json

    api_version = "v2" if "V2" in conn_var else "v1"
    monkeypatch.setenv(conn_var, conn_json(cos_conns.url, api_version=api_version, secret_key="not-the-key"))
    run = _dagbag().dags[dag_id].test(run_conf=conf)
    tis = _tis(run)
    assert tis[upload_task].state == "failed", {k: v.state for k, v in tis.items()}
    assert tis[cleanup_task].state == "success"  # the teardown still ran
    (maker,) = (t for t in tis if t.startswith("make_"))
    assert not os.path.exists(tis[maker].xcom_pull(task_ids=maker)["path"])  # and removed the local file
    assert run.state == DagRunState.FAILED


def test_example_runs_without_a_logical_date(cos_conns: Any) -> None:
    """Airflow 3 runs may have no logical date (REST API ``"logical_date": null``): no ``ds`` in the
    context. The example's templates use the run's ``run_after`` then."""
    from airflow.utils.state import DagRunState

    run = _dagbag().dags["example_cos_slice_upload"].test(logical_date=None, run_conf={"artifact_mib": 2})
    assert run.logical_date is None
    assert run.state == DagRunState.SUCCESS, {k: v.state for k, v in _tis(run).items()}
    resource_path = _tis(run)["upload"].xcom_pull(task_ids="upload")
    assert resource_path.endswith(f"/airflow-example/{run.run_after:%Y-%m-%d}/artifact-2mib.bin")


def test_example_xml_upload(cos_conns: Any) -> None:
    """The xml example: multipart upload, deferrable sensor on size + CRC-64, XCom crc64 checked."""
    from airflow.utils.state import DagRunState

    from airflow_provider_cos.protocol.crc64 import Crc64

    dag = _dagbag().dags["example_cos_xml_upload"]
    dag_run = dag.test(run_conf={"artifact_mib": 3})
    tis = _tis(dag_run)
    assert dag_run.state == DagRunState.SUCCESS, {k: v.state for k, v in tis.items()}
    rng = random.Random("cos-example-3")
    crc = Crc64()
    for _ in range(3):
        crc.update(rng.randbytes(1024 * 1024))
    assert str(tis["upload"].xcom_pull(task_ids="upload", key="crc64")) == crc.decimal()
    resource_path = tis["check_object"].xcom_pull(task_ids="check_object")
    assert resource_path.startswith(f"/{DEMO.appid}/{DEMO.bucket}/airflow-example-xml/")
    assert cos_conns.stats.requests.get("CompleteMultipartUpload") == 1  # 3 MiB > the test threshold: parts
