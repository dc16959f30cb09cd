"""CosUploadCompleteSensor for ``xml``: HeadObject decides, expectations (size, CRC64) checked, an
upload under way logged, deferrable through the same trigger."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_provider_cos.hooks.cos import CosHook
from airflow_provider_cos.protocol.crc64 import Crc64
from airflow_provider_cos.sensors.cos import CosUploadCompleteSensor
from airflow_provider_cos.triggers.cos import CosUploadCompleteTrigger
from tests.airflow.conftest import MiB, make_file, run_dag, task_states

START = pendulum.datetime(2024, 1, 1, tz="UTC")


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("deferrable", [False, True])
def test_sensor_waits_for_a_late_xml_object(cos_conns: Any, tmp_path: Path, deferrable: bool) -> None:
    src = make_file(tmp_path / "late.bin", 2 * MiB + 5)
    crc = Crc64(src.read_bytes()).decimal()
    polled = threading.Event()

    def upload_later() -> None:
        deadline = time.monotonic() + 30
        while cos_conns.stats.requests.get("HeadObject", 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # wait until the sensor has looked (and found nothing) twice
        polled.set()
        CosHook("cos_xml").upload_file(str(src), "/late/object.bin")

    uploader = threading.Thread(target=upload_later)
    uploader.start()
    with DAG(f"cos_test_xml_sensor_{deferrable}", schedule=None, start_date=START, catchup=False) as dag:
        CosUploadCompleteSensor(
            task_id="wait",
            cos_conn_id="cos_xml",
            cos_path="/late/object.bin",
            poke_interval=0.3,
            deferrable=deferrable,
            expected_size=src.stat().st_size,
            expected_crc64=crc,
            timeout=60,
        )
    try:
        run = run_dag(dag)
    finally:
        uploader.join()
    assert polled.is_set() and task_states(run) == {"wait": "success"}
    stat = run.get_task_instances()[0].xcom_pull(task_ids="wait")
    assert str(stat["crc64"]) == crc and stat["filesize"] == src.stat().st_size


@pytest.mark.usefixtures("airflow_db")
def test_wrong_crc64_fails(cos_conns: Any, tmp_path: Path) -> None:
    src = make_file(tmp_path / "x.bin", 1000)
    CosHook("cos_xml").upload_file(str(src), "/m/x.bin")
    with DAG("cos_test_xml_crc_mismatch", schedule=None, start_date=START, catchup=False) as dag:
        CosUploadCompleteSensor(
            task_id="wait",
            cos_conn_id="cos_xml",
            cos_path="/m/x.bin",
            poke_interval=0.3,
            expected_crc64="12345",
            timeout=10,
        )
    run = run_dag(dag)
    assert task_states(run) == {"wait": "failed"}


def test_upload_in_progress_is_logged(cos_conns: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_cos.protocol.xmloperations import XML
    from airflow_provider_cos.transfer.xmlcalls import xml_target

    hook = CosHook("cos_xml")
    client = hook.client
    started = client._xml.call(
        xml_target(client.target),
        XML.prepare_initiate("u/p.bin"),
        lambda s, h, b: XML.process_initiate(s, h, b, key="u/p.bin"),
    )
    sensor = CosUploadCompleteSensor(task_id="w", cos_conn_id="cos_xml", cos_path="/u/p.bin")
    lines: list[str] = []

    def record(_self: object, msg: str, *args: object) -> None:
        lines.append(msg % args)

    recorder = type("Recorder", (), {"info": record, "debug": record, "warning": record})()
    monkeypatch.setattr(CosUploadCompleteSensor, "log", property(lambda _self: recorder))  # task logs: structlog
    assert sensor.poke({}).is_done is False  # type: ignore[arg-type]
    assert any(f"upload in progress (1 multipart upload(s): {started.upload_id})" in line for line in lines), lines
    assert hook.uploads_in_progress("/u/p.bin") == [started.upload_id]

    async def first_event() -> Any:
        trigger = CosUploadCompleteTrigger(
            "/u/p.bin", cos_conn_id="cos_xml", poll_interval=0.1, deadline=time.time() + 0.5
        )
        async for event in trigger.run():
            return event.payload

    lines.clear()
    monkeypatch.setattr(CosUploadCompleteTrigger, "log", property(lambda _self: recorder))
    payload = asyncio.run(first_event())
    assert payload["status"] == "timeout"
    assert any("upload in progress (1 multipart upload(s))" in line for line in lines), lines
