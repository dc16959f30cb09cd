"""COS JSON API v2 (``/files/v2``, connection ``cos_v2``) and the asset-triggered pattern.

``example_cos_v2_asset_producer`` uploads a report to a fixed path. Because ``app_id``, ``bucket`` and
``cos_path`` are static, the operator declares the object as its outlet Asset
``cos://<bucket>-<appid>/<path>`` at parse time; every successful upload emits an asset event (its
extra carries ``resource_path``, ``sha1`` and ``size``). ``example_cos_v2_asset_consumer`` is scheduled
on that Asset and checks the object it was triggered by.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import tempfile

import pendulum
from airflow.sdk import Asset, Param, dag, task

from airflow_provider_cos.hooks.cos import CosHook, cos_asset_uri
from airflow_provider_cos.operators.cos import CosSliceUploadOperator
from airflow_provider_cos.sensors.cos import CosUploadCompleteSensor

CONN_ID = os.environ.get("COS_EXAMPLE_V2_CONN_ID", "cos_v2")
APP_ID = os.environ.get("COS_EXAMPLE_APP_ID", "1250000000")
BUCKET = os.environ.get("COS_EXAMPLE_BUCKET", "examplebucket")
REPORT_PATH = "/reports/latest/report.bin"
REPORT = Asset(uri=cos_asset_uri(APP_ID, BUCKET, REPORT_PATH), name="cos_v2_report")
DEFAULT_REPORT_MIB = int(os.environ.get("COS_EXAMPLE_V2_REPORT_MIB", "8"))


@dag(
    dag_id="example_cos_v2_asset_producer",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"report_mib": Param(DEFAULT_REPORT_MIB, type="integer", minimum=1, maximum=1024)},
    tags=["example", "cos", "v2"],
)
def example_cos_v2_asset_producer() -> None:
    @task
    def make_report(params: dict | None = None) -> dict:
        mib = int((params or {})["report_mib"])
        directory = tempfile.mkdtemp(prefix="cos-v2-example-")
        path = os.path.join(directory, "report.bin")
        rng = random.Random(f"cos-v2-report-{mib}")
        digest = hashlib.sha1()
        with open(path, "wb") as fh:
            for _ in range(mib):
                chunk = rng.randbytes(1024 * 1024)
                digest.update(chunk)
                fh.write(chunk)
        return {"path": path, "size": os.path.getsize(path), "sha1": digest.hexdigest()}

    report = make_report()
    upload = CosSliceUploadOperator(
        task_id="upload_report",
        cos_conn_id=CONN_ID,
        local_path="{{ ti.xcom_pull(task_ids='make_report')['path'] }}",
        cos_path=REPORT_PATH,
        bucket=BUCKET,
        outlets=[REPORT],
    )
    wait = CosUploadCompleteSensor(
        task_id="wait_report",
        cos_conn_id=CONN_ID,
        cos_path=REPORT_PATH,
        bucket=BUCKET,
        expected_sha1="{{ ti.xcom_pull(task_ids='make_report')['sha1'] }}",
        deferrable=True,
        poke_interval=2,
        timeout=600,
    )

    @task
    def cleanup(report: dict) -> None:
        shutil.rmtree(os.path.dirname(report["path"]), ignore_errors=True)

    report >> upload >> wait
    # A teardown, not a trigger_rule="all_done" leaf: it always runs, and a failed upload fails the run.
    wait >> cleanup(report).as_teardown(setups=report)


@dag(
    dag_id="example_cos_v2_asset_consumer",
    schedule=[REPORT],
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "cos", "v2"],
)
def example_cos_v2_asset_consumer() -> None:
    @task
    def inspect_report(triggering_asset_events: dict | None = None) -> dict:
        """Stat the object the triggering asset event names (the fixed report path when run by hand)."""
        for event in (triggering_asset_events or {}).get(REPORT, []):
            print(f"triggered by {REPORT.uri}: {event.extra}")
        stat = CosHook(CONN_ID).stat(REPORT_PATH, BUCKET)
        if stat is None or not stat["complete"]:
            raise RuntimeError(f"{REPORT.uri} is not a complete object: {stat}")
        print(f"report: {stat['filesize']} bytes, sha1 {stat['sha']}")
        return stat

    inspect_report()


example_cos_v2_asset_producer()
example_cos_v2_asset_consumer()
