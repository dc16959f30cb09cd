"""CosUploadCompleteSensor and CosUploadCompleteTrigger: poke, defer, timeout, mismatch."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_provider_cos.hooks.cos import CosHook
from airflow_provider_cos.sensors.cos import CosUploadCompleteSensor
from airflow_provider_cos.triggers.cos import CosUploadCompleteTrigger
from tests.airflow.conftest import MiB, make_file, run_dag, task_states

START = pendulum.datetime(2024, 1, 1, tz="UTC")


def _sensor_dag(dag_id: str, failures: list[str], **sensor_kwargs: Any) -> DAG:
    def on_failure(context: Any) -> None:
        failures.append(str(context.get("exception")))

    with DAG(
        dag_id, schedule=None, start_date=START, catchup=False, default_args={"on_failure_callback": on_failure}
    ) as dag:
        CosUploadCompleteSensor(task_id="wait", poke_interval=0.3, **sensor_kwargs)
    return dag


def test_trigger_serializes_to_plain_json() -> None:
    import json

    trigger = CosUploadCompleteTrigger(
        "/a/b.bin", bucket="examplebucket", cos_conn_id="c", poll_interval=2, deadline=123.5
    )
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_cos.triggers.cos.CosUploadCompleteTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert CosUploadCompleteTrigger(**kwargs).serialize() == (path, kwargs)


@pytest.mark.usefixtures("airflow_db")
def test_deferrable_sensor_waits_for_a_late_object(cos_conns: Any, tmp_path: Path) -> None:
    """The object is uploaded only once the trigger has polled and seen it missing (the first poke in
    the worker is one stat, a trigger poll the next): the sensor can succeed only through a later poll."""
    src = make_file(tmp_path / "late.bin", 2 * MiB + 5)
    sha1 = hashlib.sha1(src.read_bytes()).hexdigest()
    stats_before_upload: list[int] = []
    run_over = threading.Event()

    def upload_once_the_trigger_polled() -> None:
        while cos_conns.stats.requests.get("stat", 0) < 2:  # a condition, not a fixed delay
            if run_over.wait(0.02):
                return  # the sensor never polled twice: the run timed out, the test fails below
        stats_before_upload.append(cos_conns.stats.requests["stat"])
        CosHook().upload_file(str(src), "/late/object.bin")

    uploader = threading.Thread(target=upload_once_the_trigger_polled)
    uploader.start()
    failures: list[str] = []
    dag = _sensor_dag(
        "cos_test_deferrable_late",
        failures,
        cos_path="/late/object.bin",
        deferrable=True,
        expected_size=src.stat().st_size,
        expected_sha1=sha1,
        timeout=60,
    )
    try:
        run = run_dag(dag)
    finally:
        run_over.set()
        uploader.join()
    assert stats_before_upload, "the trigger never polled"
    assert task_states(run) == {"wait": "success"}, failures
    ti = run.get_task_instances()[0]
    stat = ti.xcom_pull(task_ids="wait")
    assert stat["sha"] == sha1 and int(stat["filelen"]) == src.stat().st_size


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("deferrable", [False, True])
def test_sensor_times_out_with_the_documented_reason(cos_conns: Any, deferrable: bool) -> None:
    """Poke mode and deferrable mode fail alike: AirflowSensorTimeout naming the path and its state."""
    from airflow.sdk.exceptions import AirflowSensorTimeout

    errors: list[BaseException] = []
    with DAG(
        f"cos_test_timeout_{deferrable}",
        schedule=None,
        start_date=START,
        catchup=False,
        default_args={"on_failure_callback": lambda context: errors.append(context["exception"])},
    ) as dag:
        CosUploadCompleteSensor(
            task_id="wait", poke_interval=0.3, cos_path="/never/there.bin", deferrable=deferrable, timeout=1
        )
    started = time.monotonic()
    run = run_dag(dag)
    assert task_states(run) == {"wait": "failed"}
    assert time.monotonic() - started < 30
    assert len(errors) == 1 and type(errors[0]) is AirflowSensorTimeout, errors
    assert str(errors[0]) == "timed out waiting for /never/there.bin: still missing"


def test_deferral_timed_out_by_the_scheduler_fails_with_the_documented_reason(cos_conns: Any) -> None:
    """When the scheduler's deferral timeout ends the wait before the trigger's own deadline, the task
    is resumed with ``__fail__`` / "Trigger timeout": the sensor still names the path and its state."""
    from airflow.sdk.exceptions import AirflowSensorTimeout

    sensor = CosUploadCompleteSensor(task_id="wait_resume", cos_path="/never/there.bin", deferrable=True, timeout=5)
    with pytest.raises(AirflowSensorTimeout) as info:
        sensor.resume_execution("__fail__", {"error": "Trigger timeout"}, {})  # what the task runner calls
    assert str(info.value) == "timed out waiting for /never/there.bin: still missing"


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("deferrable", [False, True])
def test_complete_object_with_wrong_sha1_fails(cos_conns: Any, tmp_path: Path, deferrable: bool) -> None:
    src = make_file(tmp_path / "x.bin", 1000)
    CosHook().upload_file(str(src), "/m/x.bin")
    failures: list[str] = []
    dag = _sensor_dag(
        f"cos_test_mismatch_{deferrable}",
        failures,
        cos_path="/m/x.bin",
        deferrable=deferrable,
        expected_sha1="0" * 40,
        expected_size=1000,
        timeout=30,
    )
    run = run_dag(dag)
    assert task_states(run) == {"wait": "failed"}
    assert "does not match" in failures[-1] and "sha1" in failures[-1], failures


def test_trigger_reports_errors_as_events(cos_conns: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.airflow.conftest import conn_json

    monkeypatch.setenv("AIRFLOW_CONN_COS_BADKEY", conn_json(cos_conns.url, secret_key="wrong"))

    async def first_event(trigger: CosUploadCompleteTrigger) -> Any:
        async for event in trigger.run():
            return event.payload
        return None

    payload = asyncio.run(first_event(CosUploadCompleteTrigger("/a.bin", cos_conn_id="cos_badkey")))
    assert payload["status"] == "error" and "stat of /a.bin failed" in payload["message"]

    payload = asyncio.run(
        first_event(CosUploadCompleteTrigger("/a.bin", poll_interval=0.1, deadline=time.time() + 0.3))
    )
    assert payload == {"status": "timeout", "message": "timed out waiting for /a.bin: still missing"}


def test_a_complete_empty_object_meets_expected_size_zero(cos_conns: Any, tmp_path: Path) -> None:
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    CosHook("cos_default").upload_file(str(empty), "/empty/e.bin")
    sensor = CosUploadCompleteSensor(
        task_id="wait_empty",
        cos_path="/empty/e.bin",
        expected_size=0,
        expected_sha1=hashlib.sha1(b"").hexdigest(),
        deferrable=False,
    )
    result = sensor.poke({})
    assert result.is_done
    assert int(result.xcom_value["filesize"]) == 0
    # and an expectation of another size still fails on the complete object
    wrong = CosUploadCompleteSensor(task_id="wait_empty2", cos_path="/empty/e.bin", expected_size=1, deferrable=False)
    with pytest.raises(Exception, match="size 0 != expected 1"):
        wrong.poke({})


@pytest.mark.usefixtures("airflow_db")
def test_a_form_made_connection_logs_no_masking_warning(
    cos_conns: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The form stores every declared default in ``extra`` (empty ones as null), e.g. ``"api_version":
    "v1"``. Airflow's ``Connection.extra_dejson`` hands each extra value to the secrets masker, which
    warns "Skipping masking for a secret as it's too short" for every value under 5 characters, whatever
    its key. Nothing in our extra is secret (the SecretKey is the password field), so the hook never asks
    for the masked view: a task run logs no such warning."""
    import json
    import logging

    from airflow.sdk import Connection
    from airflow.sdk._shared.secrets_masker.secrets_masker import SecretsMasker

    from airflow_provider_cos.emulator import DEMO
    from airflow_provider_cos.hooks.connection import EXTRA_FIELDS

    form_extra = {f.name: f.default for f in EXTRA_FIELDS}  # what the UI form saves
    form_extra.update(app_id=DEMO.appid, bucket=DEMO.bucket)
    conn = {
        "conn_type": "cos",
        "login": DEMO.secret_id,
        "password": DEMO.secret_key,
        "host": cos_conns.url,
        "extra": form_extra,
    }
    monkeypatch.setenv("AIRFLOW_CONN_COS_FORM", json.dumps(conn))
    src = make_file(tmp_path / "f.bin", 1000)
    CosHook().upload_file(str(src), "/form/f.bin")
    warning = "Skipping masking for a secret as it's too short"

    # the capture sees the warning when Airflow's masked view of this extra is read (the test can fail)
    monkeypatch.setattr(SecretsMasker, "_has_warned_short_secret", False)
    caplog.set_level(logging.INFO)
    assert Connection(conn_id="x", conn_type="cos", extra=json.dumps(form_extra)).extra_dejson["api_version"] == "v1"
    assert warning in caplog.text

    caplog.clear()
    monkeypatch.setattr(SecretsMasker, "_has_warned_short_secret", False)
    with DAG("cos_test_form_conn", schedule=None, start_date=START, catchup=False) as dag:
        CosUploadCompleteSensor(
            task_id="wait",
            cos_conn_id="cos_form",
            cos_path="/form/f.bin",
            deferrable=False,
            poke_interval=0.3,
            timeout=30,
        )
    run = run_dag(dag)
    assert task_states(run) == {"wait": "success"}
    assert "cos_test_form_conn" in caplog.text  # the task run's logs were captured
    assert warning not in caplog.text
    assert SecretsMasker._has_warned_short_secret is False  # not silenced for the rest of the process
