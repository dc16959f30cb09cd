"""CosToLocalFilesystemOperator: a DAG that uploads, downloads by resource_path and checks; errors; resume."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG, task

from airflow_provider_cos.emulator import DEMO
from airflow_provider_cos.operators.cos import CosSliceUploadOperator
from airflow_provider_cos.operators.download import CosToLocalFilesystemOperator, split_resource_path
from airflow_provider_cos.transfer import ProgressEvent
from airflow_provider_cos.transfer.download import partial_paths
from tests.airflow.conftest import MiB, make_file, run_dag, task_states

START = pendulum.datetime(2024, 1, 1, tz="UTC")


def _sha1(path: Path | str) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def test_split_resource_path() -> None:
    assert split_resource_path("/1250000000/examplebucket/a/b.bin") == ("1250000000", "examplebucket", "/a/b.bin")
    from airflow_provider_cos.protocol.errors import CosConfigError

    for bad in ("a/b", "/1250000000/examplebucket", "/1250000000//x.bin", "/1/b/dir/"):
        with pytest.raises((CosConfigError, Exception)):
            split_resource_path(bad)


def test_exactly_one_of_cos_path_and_resource_path() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        CosToLocalFilesystemOperator(task_id="d", local_path="/tmp/x")
    with pytest.raises(ValueError, match="exactly one"):
        CosToLocalFilesystemOperator(task_id="d", local_path="/tmp/x", cos_path="/a", resource_path="/1/b/a")


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("conn_id", ["cos_default", "cos_v2"])
def test_upload_then_download_by_resource_path(cos_conns: Any, tmp_path: Path, conn_id: str) -> None:
    src = make_file(tmp_path / "src.bin", 5 * MiB + 3, seed=5)
    out = tmp_path / "back" / "{{ run_id | replace(':', '_') }}.bin"
    with DAG(f"cos_test_download_{conn_id}", schedule=None, start_date=START, catchup=False) as dag:
        upload = CosSliceUploadOperator(
            task_id="upload", cos_conn_id=conn_id, local_path=str(src), cos_path="/dl/src.bin"
        )
        download = CosToLocalFilesystemOperator(
            task_id="download", cos_conn_id=conn_id, resource_path=upload.output, local_path=str(out)
        )

        @task
        def check(local_path: str) -> None:
            if _sha1(local_path) != _sha1(src):
                raise RuntimeError("downloaded bytes differ")

        check(download.output)
    run = run_dag(dag)
    assert task_states(run) == {"upload": "success", "download": "success", "check": "success"}
    ti = next(t for t in run.get_task_instances() if t.task_id == "download")
    local = ti.xcom_pull(task_ids="download")
    assert Path(local).parent == tmp_path / "back" and _sha1(local) == _sha1(src)
    assert ti.xcom_pull(task_ids="download", key="resource_path") == f"/{DEMO.appid}/{DEMO.bucket}/dl/src.bin"
    assert ti.xcom_pull(task_ids="download", key="size") == 5 * MiB + 3
    assert ti.xcom_pull(task_ids="download", key="sha1") == _sha1(src)
    assert cos_conns.stats.requests.get("download", 0) >= 2


@pytest.mark.usefixtures("airflow_db")
def test_missing_object_fails_without_retry(cos_conns: Any, tmp_path: Path) -> None:
    out = tmp_path / "never.bin"
    with DAG("cos_test_download_missing", schedule=None, start_date=START, catchup=False) as dag:
        CosToLocalFilesystemOperator(
            task_id="download",
            cos_path="/nope.bin",
            local_path=str(out),
            retries=3,
            retry_delay=pendulum.duration(seconds=0),
        )
    run = run_dag(dag)
    assert task_states(run) == {"download": "failed"}
    assert run.get_task_instances()[0].try_number == 1  # AirflowFailException: no retry for a missing object
    assert not out.exists() and not any(p.exists() for p in partial_paths(out))


class _KilledOnce(CosToLocalFilesystemOperator):
    """Try 1 is killed (on_kill) once ``kill_after`` bytes are written; try 2 must resume."""

    tries = 0
    kill_after = 0

    def progress_callback(self) -> Any:
        inner = super().progress_callback()
        first = type(self).tries == 1

        def callback(event: ProgressEvent) -> None:
            inner(event)
            if first and event.bytes_done >= self.kill_after:
                self.on_kill()

        return callback

    def execute(self, context: Any) -> str:
        type(self).tries += 1
        return super().execute(context)


@pytest.mark.usefixtures("airflow_db")
def test_retry_resumes_the_download(cos_conns: Any, tmp_path: Path) -> None:
    from airflow_provider_cos.hooks.cos import CosHook

    size = 12 * MiB  # three 4 MiB parts
    src = make_file(tmp_path / "big.bin", size, seed=12)
    CosHook("cos_v2").upload_file(str(src), "/big.bin")
    cos_conns.reset_stats()
    out = tmp_path / "copy.bin"
    _KilledOnce.tries = 0
    _KilledOnce.kill_after = 4 * MiB
    with DAG("cos_test_download_resume", schedule=None, start_date=START, catchup=False) as dag:
        _KilledOnce(
            task_id="download",
            cos_conn_id="cos_v2",
            cos_path="/big.bin",
            local_path=str(out),
            max_workers=1,
            retries=1,
            retry_delay=pendulum.duration(seconds=0),
        )
    run = run_dag(dag)
    assert task_states(run) == {"download": "success"} and _KilledOnce.tries == 2
    assert _sha1(out) == _sha1(src)
    assert cos_conns.stats.requests["download"] == 3  # each part fetched once over both tries
