"""End to end on a real deployment (see conftest.py): everything through the REST API and real processes.

- the example DAGs (v1 and xml), triggered through the REST API with their upload task SIGKILLed
  mid-upload: the run succeeds, the retry resumed (bytes re-sent <= (slices in flight + 1) x slice size,
  counted by the emulator), and the XComs are right;
- a deferrable sensor waits in the triggerer process for an object that appears only after it deferred.
"""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path
from typing import Any

from airflow_provider_cos.emulator import DEMO
from airflow_provider_cos.protocol.messages import CosTarget
from airflow_provider_cos.protocol.signing import Credentials
from airflow_provider_cos.transfer import CosClient
from tests.deployment.services import CONN_EXTRA, Deployment, MiB

EXAMPLE = "example_cos_slice_upload"
XML_EXAMPLE = "example_cos_xml_upload"
LATE = "cos_deployment_late_object"
TRIGGER_CLASS = "airflow_provider_cos.triggers.cos.CosUploadCompleteTrigger"


def emulator_stats(dep: Deployment) -> dict[str, Any]:
    return dict(dep.emulator("GET", "stats"))


def _kill_the_upload_midway(dep: Deployment, dag_id: str, data_op: str, resume_key: str, mib: int) -> str:
    """Trigger ``dag_id`` with a ``mib`` MiB artifact, SIGKILL its upload task once 5 MiB went out (each
    ``data_op`` request answered after 0.6 s, so that the kill lands mid-upload), and check that the run
    succeeds on the second try, which resumed: bytes re-sent <= (in flight + 1) x slice size, counted by
    the emulator. ``resume_key`` is what the running try keeps in the task state store (v1: the session,
    xml: the UploadId), where any worker finds it. Returns the run id."""
    size = mib * MiB
    in_flight = int(CONN_EXTRA["max_workers"])
    slice_size = int(CONN_EXTRA["slice_size"])
    dep.wait_for_dag(dag_id)
    dep.emulator("DELETE", "stats")
    dep.emulator("POST", "faults", {"op": data_op, "delay": 0.6, "times": None})
    run_id = dep.trigger(dag_id, conf={"artifact_mib": mib})

    def upload_midway() -> tuple[int, int] | None:
        ti = dep.task_instance(dag_id, run_id, "upload")
        sent = emulator_stats(dep)["slice_bytes"]
        if ti["state"] == "running" and ti["pid"] and 5 * MiB <= sent:
            return int(ti["pid"]), sent
        assert ti["state"] in (None, "scheduled", "queued", "running"), ti["state"]
        return None

    pid, sent_before_kill = dep.wait_until("the upload task mid-upload", upload_midway, 180, interval=0.05)
    owner = dep.owner(pid)  # LocalExecutor: the task process descends from the scheduler
    assert owner is not None and owner.name == "scheduler", f"pid {pid} of the upload task: {owner}"
    checkpoint = dep.upload_checkpoint(dag_id, run_id, "upload")
    assert checkpoint is not None and checkpoint[resume_key], checkpoint
    os.kill(pid, signal.SIGKILL)
    dep.emulator("DELETE", "faults")
    assert sent_before_kill < size, "the kill came too late: the upload had already sent everything"

    assert dep.wait_for_run(dag_id, run_id, 240) == "success"

    ti = dep.task_instance(dag_id, run_id, "upload")
    assert ti["state"] == "success" and ti["try_number"] == 2, ti
    tries = dep.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/upload/tries")["task_instances"]
    assert [(t["try_number"], t["state"]) for t in tries] == [(1, "failed"), (2, "success")]

    # The retry resumed the killed try's upload: each byte went over the wire about once.
    stats = emulator_stats(dep)
    resent = stats["slice_bytes"] - size
    assert 0 <= resent <= (in_flight + 1) * slice_size, f"re-sent {resent} bytes ({stats})"
    assert stats["objects_completed"] == 1
    assert dep.upload_checkpoint(dag_id, run_id, "upload") is None  # removed after success
    return run_id


def test_example_dag_survives_a_sigkilled_upload(deployment: Deployment) -> None:
    dep = deployment
    mib = 12
    size = mib * MiB
    run_id = _kill_the_upload_midway(dep, EXAMPLE, "upload_slice_data", "session", mib)

    artifact = dep.xcom(EXAMPLE, run_id, "make_artifact")
    resource_path = dep.xcom(EXAMPLE, run_id, "upload")
    assert resource_path.startswith(f"/{DEMO.appid}/{DEMO.bucket}/") and resource_path.endswith(f"-{mib}mib.bin")
    assert dep.xcom(EXAMPLE, run_id, "upload", "sha1") == artifact["sha1"]
    assert dep.xcom(EXAMPLE, run_id, "upload", "size") == size == artifact["size"]
    assert dep.xcom(EXAMPLE, run_id, "upload", "instant") is False
    assert dep.xcom(EXAMPLE, run_id, "upload", "url").startswith(dep.emulator_url)
    stat = dep.xcom(EXAMPLE, run_id, "wait_complete")
    assert int(stat["filesize"]) == int(stat["filelen"]) == size and stat["sha"] == artifact["sha1"]
    assert dep.xcom(EXAMPLE, run_id, "check_object") == resource_path


def test_xml_example_dag_survives_a_sigkilled_upload(deployment: Deployment) -> None:
    """The same kill with the xml example (connection ``cos_xml``: the same knobs, ``api_version: xml``):
    the retry finds the multipart upload through the task state store and ListParts, and sends only the
    parts the server does not hold."""
    dep = deployment
    mib = 12
    run_id = _kill_the_upload_midway(dep, XML_EXAMPLE, "UploadPart", "upload_id", mib)

    artifact = dep.xcom(XML_EXAMPLE, run_id, "make_artifact")
    resource_path = dep.xcom(XML_EXAMPLE, run_id, "upload")
    assert resource_path.startswith(f"/{DEMO.appid}/{DEMO.bucket}/") and resource_path.endswith(f"-{mib}mib.bin")
    assert dep.xcom(XML_EXAMPLE, run_id, "upload", "size") == mib * MiB == artifact["size"]
    assert str(dep.xcom(XML_EXAMPLE, run_id, "upload", "crc64")) == str(artifact["crc64"])
    assert dep.xcom(XML_EXAMPLE, run_id, "upload", "etag").strip('"').endswith(f"-{mib}")  # 1 MiB parts
    assert dep.xcom(XML_EXAMPLE, run_id, "check_object") == resource_path


def test_deferrable_sensor_waits_in_the_triggerer(deployment: Deployment, tmp_path: Path) -> None:
    dep = deployment
    cos_path = f"/late-{uuid.uuid4().hex}.bin"
    dep.wait_for_dag(LATE)
    run_id = dep.trigger(LATE, conf={"cos_path": cos_path})

    def deferred() -> Any:
        ti = dep.task_instance(LATE, run_id, "wait_late")
        assert ti["state"] in (None, "scheduled", "queued", "running", "deferred"), ti["state"]
        return ti if ti["state"] == "deferred" and ti["triggerer_job"] else None

    ti = dep.wait_until("the sensor deferred and its trigger picked up by the triggerer", deferred, 180)
    assert ti["trigger"]["classpath"] == TRIGGER_CLASS
    assert ti["triggerer_job"]["job_type"] == "TriggererJob"
    # The trigger polls the object in the triggerer process while the task holds no worker slot.
    polls = emulator_stats(dep)["requests"].get("stat", 0)
    dep.wait_until("two polls by the trigger", lambda: emulator_stats(dep)["requests"].get("stat", 0) >= polls + 2, 60)
    assert dep.task_instance(LATE, run_id, "wait_late")["state"] == "deferred"

    src = tmp_path / "late.bin"
    src.write_bytes(os.urandom(100_000))
    client = CosClient(
        target=CosTarget(dep.emulator_url, "v1", DEMO.appid, DEMO.bucket),
        credentials=Credentials(DEMO.secret_id, DEMO.secret_key),
    )
    try:
        result = client.upload_file(str(src), cos_path)
    finally:
        client.close()

    assert dep.wait_for_run(LATE, run_id, 120) == "success"
    ti = dep.task_instance(LATE, run_id, "wait_late")
    assert ti["try_number"] == 1  # resumed from the deferral, not retried
    stat = dep.xcom(LATE, run_id, "wait_late")
    assert int(stat["filesize"]) == 100_000 and stat["sha"] == result.as_dict()["sha1"]


def test_xml_many_files_and_object_storage_dags(deployment: Deployment) -> None:
    """The xml example (multipart, deferrable CRC-64 sensor), the many-files example (one task for a
    directory and one mapped task per file) and ObjectStoragePath tasks, on the real services."""
    dep = deployment
    runs = {}
    for dag_id in ("example_cos_xml_upload", "example_cos_many_files", "cos_deployment_object_storage"):
        dep.wait_for_dag(dag_id)
        runs[dag_id] = dep.trigger(dag_id, logical_date=None)
    for dag_id, run_id in runs.items():
        assert dep.wait_for_run(dag_id, run_id, 300) == "success", dag_id

    xml_run = runs["example_cos_xml_upload"]
    resource_path = dep.xcom("example_cos_xml_upload", xml_run, "upload")
    assert resource_path.startswith(f"/{DEMO.appid}/{DEMO.bucket}/")
    assert dep.xcom("example_cos_xml_upload", xml_run, "upload", "etag")
    assert dep.xcom("example_cos_xml_upload", xml_run, "check_object") == resource_path

    many = dep.xcom("example_cos_many_files", runs["example_cos_many_files"], "upload_dir")
    assert len(many) == 20 and all(p.startswith(f"/{DEMO.appid}/{DEMO.bucket}/") for p in many)

    osp = dep.xcom("cos_deployment_object_storage", runs["cos_deployment_object_storage"], "read")
    assert osp == {
        "text": "hello from a deployment",
        "names": ["a.txt", "b.bin"],
        "copied": 256 * 4096,
        "left": ["a.txt"],
    }
