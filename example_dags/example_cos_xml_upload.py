"""Upload a large artifact to today's COS (the XML API, connection ``cos_xml``) with a multipart upload.

The same operator and sensor as for v1/v2: only the connection differs (``api_version: xml``, a region
such as ``ap-guangzhou``). ``make_artifact`` writes ``artifact_mib`` MiB and computes its CRC-64 (the
checksum COS keeps for every object, ``x-cos-hash-crc64ecma``); ``upload`` sends it in parallel parts
(resumable across Airflow retries); ``wait_complete`` is the deferrable sensor, complete when HeadObject
finds the object with that size and CRC-64; ``check_object`` compares the XCom ``crc64`` with it;
``cleanup`` is a teardown.

Run it against the embedded emulator with ``python -m airflow_provider_cos.demo --api xml``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile

import pendulum
from airflow.sdk import Param, dag, task

from airflow_provider_cos.hooks.cos import CosHook
from airflow_provider_cos.operators.cos import CosSliceUploadOperator
from airflow_provider_cos.sensors.cos import CosUploadCompleteSensor

CONN_ID = os.environ.get("COS_EXAMPLE_XML_CONN_ID", "cos_xml")
DEFAULT_ARTIFACT_MIB = int(os.environ.get("COS_EXAMPLE_ARTIFACT_MIB", "48"))
RUN_DATE = "{{ (dag_run.logical_date or dag_run.run_after) | ds }}"
COS_PATH = "/airflow-example-xml/" + RUN_DATE + "/artifact-{{ params.artifact_mib }}mib.bin"
CHUNK = 1024 * 1024


@dag(
    dag_id="example_cos_xml_upload",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"artifact_mib": Param(DEFAULT_ARTIFACT_MIB, type="integer", minimum=1, maximum=4096)},
    default_args={"retries": 2, "retry_delay": pendulum.duration(seconds=5)},
    tags=["example", "cos", "xml"],
)
def example_cos_xml_upload() -> None:
    @task
    def make_artifact(params: dict | None = None) -> dict:
        """Write the artifact in 1 MiB chunks; return its path, size and CRC-64 (decimal, as COS says it)."""
        from airflow_provider_cos.protocol.crc64 import Crc64

        mib = int((params or {})["artifact_mib"])
        directory = tempfile.mkdtemp(prefix="cos-xml-example-")
        path = os.path.join(directory, "artifact.bin")
        rng = random.Random(f"cos-example-{mib}")
        crc = Crc64()
        with open(path, "wb") as fh:
            for _ in range(mib):
                chunk = rng.randbytes(CHUNK)
                crc.update(chunk)
                fh.write(chunk)
        return {"path": path, "size": os.path.getsize(path), "crc64": crc.decimal()}

    artifact = make_artifact()
    upload = CosSliceUploadOperator(
        task_id="upload",
        cos_conn_id=CONN_ID,
        local_path="{{ ti.xcom_pull(task_ids='make_artifact')['path'] }}",
        cos_path=COS_PATH,
    )
    wait_complete = CosUploadCompleteSensor(
        task_id="wait_complete",
        cos_conn_id=CONN_ID,
        cos_path=COS_PATH,
        expected_crc64="{{ ti.xcom_pull(task_ids='make_artifact')['crc64'] }}",
        deferrable=True,
        poke_interval=2,
        timeout=600,
    )

    @task
    def check_object(resource_path: str, artifact: dict, ti=None) -> str:
        """HeadObject through the hook; its size and CRC-64 must be the artifact's and the upload's XCom."""
        _, _appid, bucket, path = resource_path.split("/", 3)
        stat = CosHook(CONN_ID).stat("/" + path, bucket)
        uploaded = str(ti.xcom_pull(task_ids="upload", key="crc64"))
        if stat is None or stat["filesize"] != artifact["size"] or not stat["crc64"] == uploaded == artifact["crc64"]:
            raise RuntimeError(f"{resource_path} does not match the artifact: {stat} vs {artifact}")
        result_file = os.environ.get("COS_EXAMPLE_RESULT_FILE")
        if result_file:
            with open(result_file, "w") as fh:
                json.dump({"resource_path": resource_path, "size": artifact["size"], "crc64": uploaded}, fh)
        return resource_path

    @task
    def cleanup(artifact: dict) -> None:
        shutil.rmtree(os.path.dirname(artifact["path"]), ignore_errors=True)

    checked = check_object(upload.output, artifact)
    artifact >> upload >> wait_complete >> checked
    checked >> cleanup(artifact).as_teardown(setups=artifact)


example_cos_xml_upload()
