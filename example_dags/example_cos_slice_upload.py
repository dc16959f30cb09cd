"""Upload a large artifact to Tencent COS with a resumable slice upload, then wait for and check it.

Tasks: ``make_artifact`` writes ``artifact_mib`` MiB of deterministic pseudo-random bytes (param, default
48, or ``COS_EXAMPLE_ARTIFACT_MIB``), ``upload`` sends it with :class:`CosSliceUploadOperator`
(connection ``cos_default``), ``wait_complete`` is the deferrable completion sensor, ``check_object``
pulls ``resource_path`` from XCom and compares the object's size and SHA-1 with the artifact's,
``read_back`` downloads the object by that ``resource_path`` with :class:`CosToLocalFilesystemOperator`,
``compare`` checks the downloaded copy against the artifact's size and SHA-1, and ``cleanup`` (a
teardown: it runs even when the upload failed, which still fails the run) removes the local files.

Run it against the embedded emulator with ``python -m airflow_provider_cos.demo``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile

import pendulum
from airflow.sdk import Param, dag, task

from airflow_provider_cos.hooks.cos import CosHook
from airflow_provider_cos.operators.cos import CosSliceUploadOperator
from airflow_provider_cos.operators.download import CosToLocalFilesystemOperator
from airflow_provider_cos.sensors.cos import CosUploadCompleteSensor

CONN_ID = os.environ.get("COS_EXAMPLE_CONN_ID", "cos_default")
DEFAULT_ARTIFACT_MIB = int(os.environ.get("COS_EXAMPLE_ARTIFACT_MIB", "48"))
# Not ``{{ ds }}``: a run triggered with ``"logical_date": null`` (Airflow 3) has no ``ds``. The logical
# date when the run has one (scheduled runs, backfills), else the time the run was created for.
RUN_DATE = "{{ (dag_run.logical_date or dag_run.run_after) | ds }}"
COS_PATH = "/airflow-example/" + RUN_DATE + "/artifact-{{ params.artifact_mib }}mib.bin"
CHUNK = 1024 * 1024


@dag(
    dag_id="example_cos_slice_upload",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"artifact_mib": Param(DEFAULT_ARTIFACT_MIB, type="integer", minimum=1, maximum=4096)},
    default_args={"retries": 2, "retry_delay": pendulum.duration(seconds=5)},
    tags=["example", "cos"],
)
def example_cos_slice_upload() -> None:
    @task
    def make_artifact(params: dict | None = None, run_id: str | None = None) -> dict:
        """Write the artifact in 1 MiB chunks (bounded memory); return its path, size and SHA-1."""
        mib = int((params or {})["artifact_mib"])
        directory = tempfile.mkdtemp(prefix="cos-example-")
        path = os.path.join(directory, "artifact.bin")
        rng = random.Random(f"cos-example-{mib}")
        digest = hashlib.sha1()
        with open(path, "wb") as fh:
            for _ in range(mib):
                chunk = rng.randbytes(CHUNK)
                digest.update(chunk)
                fh.write(chunk)
        size = os.path.getsize(path)
        print(f"artifact: {path} ({size} bytes, sha1 {digest.hexdigest()})")
        return {"path": path, "size": size, "sha1": digest.hexdigest()}

    artifact = make_artifact()

    upload = CosSliceUploadOperator(
        task_id="upload",
        cos_conn_id=CONN_ID,
        local_path="{{ ti.xcom_pull(task_ids='make_artifact')['path'] }}",
        cos_path=COS_PATH,
        biz_attr="airflow-example run {{ run_id }}",
    )

    wait_complete = CosUploadCompleteSensor(
        task_id="wait_complete",
        cos_conn_id=CONN_ID,
        cos_path=COS_PATH,
        expected_sha1="{{ ti.xcom_pull(task_ids='make_artifact')['sha1'] }}",
        deferrable=True,
        poke_interval=2,
        timeout=600,
    )

    @task
    def check_object(resource_path: str, artifact: dict) -> str:
        """Stat the uploaded object through the hook and compare it with the local artifact."""
        _, _appid, bucket, path = resource_path.split("/", 3)
        stat = CosHook(CONN_ID).stat("/" + path, bucket)
        if stat is None:
            raise RuntimeError(f"{resource_path} does not exist")
        if int(stat["filesize"]) != artifact["size"] or stat["sha"] != artifact["sha1"]:
            raise RuntimeError(f"{resource_path} does not match the artifact: {stat} vs {artifact}")
        print(f"resource_path: {resource_path}")
        result_file = os.environ.get("COS_EXAMPLE_RESULT_FILE")
        if result_file:
            with open(result_file, "w") as fh:
                json.dump({"resource_path": resource_path, "size": artifact["size"], "sha1": artifact["sha1"]}, fh)
        return resource_path

    @task
    def cleanup(artifact: dict) -> None:
        shutil.rmtree(os.path.dirname(artifact["path"]), ignore_errors=True)

    checked = check_object(upload.output, artifact)
    artifact >> upload >> wait_complete >> checked

    # Read the object back by the resource_path check_object passed on, into the artifact's folder.
    read_back = CosToLocalFilesystemOperator(
        task_id="read_back",
        cos_conn_id=CONN_ID,
        resource_path=checked,
        local_path="{{ ti.xcom_pull(task_ids='make_artifact')['path'] }}.read-back",
    )

    @task
    def compare(local_copy: str, artifact: dict) -> None:
        digest = hashlib.sha1()
        with open(local_copy, "rb") as fh:
            for chunk in iter(lambda: fh.read(CHUNK), b""):
                digest.update(chunk)
        if os.path.getsize(local_copy) != artifact["size"] or digest.hexdigest() != artifact["sha1"]:
            raise RuntimeError(f"{local_copy} differs from the artifact {artifact}")
        print(f"read back {local_copy}: {artifact['size']} bytes, sha1 {artifact['sha1']}")

    compared = compare(read_back.output, artifact)
    # A teardown runs whatever happened upstream but, unlike a trigger_rule="all_done" leaf, does not
    # decide the run's state: a failed upload fails the run.
    compared >> cleanup(artifact).as_teardown(setups=artifact)


example_cos_slice_upload()
