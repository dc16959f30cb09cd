"""CosSliceUploadOperator with many files: directory, glob, list; partial failure; retry skips; mapping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_provider_cos.emulator import DEMO, FaultRule
from airflow_provider_cos.hooks.cos import CosHook
from airflow_provider_cos.operators.cos import CosSliceUploadOperator
from tests.airflow.conftest import make_file, run_dag, task_states

START = pendulum.datetime(2024, 1, 1, tz="UTC")
pytestmark = pytest.mark.usefixtures("airflow_db")


def _tree(root: Path) -> list[Path]:
    files = [
        make_file(root / "a.bin", 1000, 1),
        make_file(root / "sub" / "b.bin", 2000, 2),
        make_file(root / "sub" / "deep" / "c.txt", 3000, 3),
    ]
    return files


@pytest.mark.parametrize("conn_id", ["cos_default", "cos_v2"])
def test_directory_glob_and_list(cos_conns: Any, tmp_path: Path, conn_id: str) -> None:
    files = _tree(tmp_path / "data")
    with DAG(f"cos_test_many_{conn_id}", schedule=None, start_date=START, catchup=False) as dag:
        CosSliceUploadOperator(
            task_id="dir", cos_conn_id=conn_id, local_path=str(tmp_path / "data"), cos_path="/many/dir/"
        )
        CosSliceUploadOperator(
            task_id="glob",
            cos_conn_id=conn_id,
            local_path=str(tmp_path / "data" / "**" / "*.bin"),
            cos_path="/many/glob/",
        )
        CosSliceUploadOperator(
            task_id="list", cos_conn_id=conn_id, local_path=[str(f) for f in files], cos_path="/many/list/"
        )
    run = run_dag(dag)
    assert task_states(run) == {"dir": "success", "glob": "success", "list": "success"}
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    base = f"/{DEMO.appid}/{DEMO.bucket}"
    assert tis["dir"].xcom_pull(task_ids="dir") == [
        f"{base}/many/dir/a.bin",
        f"{base}/many/dir/sub/b.bin",
        f"{base}/many/dir/sub/deep/c.txt",
    ]
    assert tis["glob"].xcom_pull(task_ids="glob") == [f"{base}/many/glob/a.bin", f"{base}/many/glob/sub/b.bin"]
    assert tis["list"].xcom_pull(task_ids="list") == [f"{base}/many/list/{f.name}" for f in files]
    hook = CosHook(conn_id)
    stat = hook.stat("/many/dir/sub/deep/c.txt")
    assert stat is not None and int(stat["filesize"]) == 3000


def test_bad_batches_fail_clearly(cos_conns: Any, tmp_path: Path) -> None:
    _tree(tmp_path / "data")
    cases = [
        (str(tmp_path / "data" / "*.nothing"), "/many/", "matches no file"),
        ([str(tmp_path / "missing.bin")], "/many/", "not an existing file"),
        ([str(tmp_path / "data" / "a.bin"), str(tmp_path / "data" / "sub" / "b.bin")], "/many/x.bin", "folder"),
        ([str(tmp_path / "data" / "a.bin"), str(tmp_path / "data" / "a.bin")], "/many/", "would both be"),
    ]
    for local, cos_path, message in cases:
        op = CosSliceUploadOperator(task_id="t", local_path=local, cos_path=cos_path)
        with pytest.raises(AirflowFailException, match=message):
            op.execute({"ti": None})


def test_partial_failure_names_the_files_and_a_retry_skips_the_stored_ones(cos_conns: Any, tmp_path: Path) -> None:
    files = _tree(tmp_path / "data")
    cos_conns.add_fault(FaultRule(op="upload", path="/retry/sub/b.bin", status=500, times=3))  # max_retries=2
    with DAG("cos_test_many_retry", schedule=None, start_date=START, catchup=False) as dag:
        CosSliceUploadOperator(
            task_id="up",
            local_path=str(tmp_path / "data"),
            cos_path="/retry/",
            retries=1,
            retry_delay=pendulum.duration(seconds=0),
        )
    run = run_dag(dag)
    assert task_states(run) == {"up": "success"}
    assert run.get_task_instances()[0].try_number == 2
    assert cos_conns.stats.faults_fired == 3
    # try 1: 3 files, b.bin refused 3 times; try 2: only b.bin again (a.bin and c.txt skipped)
    assert cos_conns.stats.requests["upload"] == len(files) - 1 + 3 + 1


def test_failure_message_names_the_failed_file(cos_conns: Any, tmp_path: Path) -> None:
    _tree(tmp_path / "data")
    cos_conns.add_fault(FaultRule(op="upload", path="/fail/sub/deep/c.txt", status=500, times=None))
    op = CosSliceUploadOperator(task_id="t", local_path=str(tmp_path / "data"), cos_path="/fail/")
    with pytest.raises(AirflowException) as info:
        op.execute({"ti": None, "outlet_events": {}})
    text = str(info.value)
    assert "1 of 3 file(s) failed" in text and "deep/c.txt" in text and "a.bin" not in text.split("failed", 1)[1]


def test_example_many_files_dag(cos_conns: Any) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.state import DagRunState

    from tests.conftest import os as _os

    bag = DagBag(_os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert not bag.import_errors, bag.import_errors
    run = bag.dags["example_cos_many_files"].test(run_conf={"file_count": 6})
    assert run.state == DagRunState.SUCCESS, task_states(run)
    tis = [ti for ti in run.get_task_instances() if ti.task_id == "upload_each"]
    assert len(tis) == 6  # one mapped task instance per file
    counted = next(ti for ti in run.get_task_instances() if ti.task_id == "count_objects")
    assert counted.xcom_pull(task_ids="count_objects") == 6
