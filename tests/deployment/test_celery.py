"""Outgrowing one machine: CeleryExecutor with Redis and two workers, each with local directories of its own.

An upload task is SIGKILLed mid-upload on the worker that ran it, and that worker is shut down; the retry
runs on the other worker and resumes the same upload session through the task-state store (the local
checkpoint directories stay empty): the emulator counts the bytes re-sent, at most (slices in flight + 1)
x slice size.

Needs Debian's ``redis-server`` (``.ci/run`` installs it); skipped without it unless
``COS_REQUIRE_REDIS=1`` (set by ``.ci/run``) makes that a failure.
"""

from __future__ import annotations

import functools
import os
import random
import shutil
import signal
from collections.abc import Iterator

import pytest

from airflow_provider_cos.emulator import DEMO
from tests.deployment.services import CONN_EXTRA, REPO, Deployment, MiB, Service, leftover_processes

DAG_ID = "cos_deployment_celery_resume"
WORKERS = ("worker-a", "worker-b")


def said_ready(worker: Service) -> bool:
    return any(f"{worker.name}@" in line and " ready." in line for line in worker.tail(200).splitlines())


@pytest.fixture(scope="module")
def celery_deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    if not shutil.which("redis-server"):
        if os.environ.get("COS_REQUIRE_REDIS") == "1":
            pytest.fail("redis-server is missing (apt-get install -y redis-server)")
        pytest.skip("redis-server is missing (apt-get install -y redis-server); COS_REQUIRE_REDIS=1 to fail")
    dep = Deployment(
        tmp_path_factory.mktemp("celery"),
        executor="CeleryExecutor",
        dag_files=(REPO / "tests" / "deployment" / "dags" / f"{DAG_ID}.py",),
    )
    try:
        dep.start_emulator()
        redis = dep.start_redis()
        dep.env.update({"AIRFLOW__CELERY__BROKER_URL": f"{redis}/0", "AIRFLOW__CELERY__RESULT_BACKEND": f"{redis}/1"})
        dep.airflow("db", "migrate")
        dep.start("api-server", "api-server", "--port", str(dep.api_port), "--host", "127.0.0.1")
        for name in ("scheduler", "dag-processor"):
            dep.start(name, name)
        workers = [dep.start_celery_worker(name) for name in WORKERS]
        dep.wait_until("the api-server answers /api/v2/monitor/health", dep.api_healthy, 120)
        for worker in workers:  # Celery logs "<name>@<host> ready." once it consumes
            dep.wait_until(f"{worker.name} ready", functools.partial(said_ready, worker), 120)
        dep.create_cos_connection("cos_default")
        yield dep
    finally:
        pids = dep.pids()
        dep.stop()
        left = leftover_processes(pids)
        assert not left, f"processes left behind: {left}"


def test_upload_killed_on_one_worker_resumes_on_the_other(celery_deployment: Deployment) -> None:
    dep = celery_deployment
    size = 12 * MiB
    src = dep.root / "input" / "artifact.bin"
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(random.Random(5).randbytes(size))
    workers = {s.name: s for s in dep.services if s.name in WORKERS}
    dep.wait_for_dag(DAG_ID)
    dep.emulator("DELETE", "stats")
    dep.emulator("POST", "faults", {"op": "upload_slice_data", "delay": 0.6, "times": None})
    run_id = dep.trigger(DAG_ID, conf={"local_path": str(src), "cos_path": "/celery/artifact.bin"})

    def upload_midway() -> tuple[int, int] | None:
        ti = dep.task_instance(DAG_ID, run_id, "upload")
        sent = dep.emulator("GET", "stats")["slice_bytes"]
        if ti["state"] == "running" and ti["pid"] and 5 * MiB <= sent:
            return int(ti["pid"]), sent
        assert ti["state"] in (None, "scheduled", "queued", "running"), ti["state"]
        return None

    pid, sent_before_kill = dep.wait_until("the upload task mid-upload", upload_midway, 180, interval=0.05)
    first = dep.owner(pid)
    assert first is not None and first.name in workers, f"pid {pid} is not a task of a worker: {first}"
    (second,) = [w for w in workers.values() if w is not first]
    # The running try keeps its upload session in the task state store, where any worker finds it.
    checkpoint = dep.upload_checkpoint(DAG_ID, run_id, "upload")
    assert checkpoint is not None and checkpoint["session"], checkpoint
    os.kill(pid, signal.SIGKILL)
    first.may_exit = True
    os.kill(first.pid, signal.SIGTERM)  # warm shutdown: the killed worker takes no more tasks
    dep.emulator("DELETE", "faults")
    assert sent_before_kill < size

    assert dep.wait_for_run(DAG_ID, run_id, 240) == "success"
    tries = dep.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/upload/tries")["task_instances"]
    assert [(t["try_number"], t["state"], t["hostname"]) for t in tries] == [
        (1, "failed", first.name),
        (2, "success", second.name),
    ]
    dep.wait_until(f"{first.name} to finish its warm shutdown", lambda: first.popen.poll() is not None, 60)

    stats = dep.emulator("GET", "stats")
    resent = stats["slice_bytes"] - size
    bound = (int(CONN_EXTRA["max_workers"]) + 1) * int(CONN_EXTRA["slice_size"])
    print(
        f"celery resume: killed on {first.name} after {sent_before_kill} of {size} bytes; "
        f"{second.name} finished; slice bytes received {stats['slice_bytes']}, re-sent {resent} (bound {bound})"
    )
    assert 0 <= resent <= bound, stats
    assert stats["objects_completed"] == 1
    assert dep.upload_checkpoint(DAG_ID, run_id, "upload") is None  # removed after success
    # Neither worker resumed through a local file: the state went through the task-state store.
    for name in WORKERS:
        assert list((dep.root / name / "checkpoints").rglob("*")) == [], name
    assert dep.xcom(DAG_ID, run_id, "upload") == f"/{DEMO.appid}/{DEMO.bucket}/celery/artifact.bin"
