"""A real Airflow deployment for tests: each service its own process, stopped by PID at the end.

:class:`Deployment` owns one temporary root (``AIRFLOW_HOME``, DAGs folder, emulator data, service logs),
starts the COS emulator CLI, ``airflow api-server``, ``scheduler``, ``dag-processor``, ``triggerer`` (and
Celery workers, Redis) as processes, each in its own process group, and talks to them over HTTP only: the
REST API (``/api/v2``, no login with ``SIMPLE_AUTH_MANAGER_ALL_ADMINS``) and the emulator's control
endpoints. :meth:`Deployment.stop` ends every process it started, and every descendant of those (Airflow's
task processes run in process groups of their own), by PID; :func:`leftover_processes` checks that none
survived.

Used by ``tests/deployment``; nothing here is a mock.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil
import requests

from airflow_provider_cos.emulator import DEMO
from tests.support.emulator_cli import emulator_command

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")

#: Small transfers: 1 MiB slices, slice upload above 1 MiB, two slices in flight, quick failures.
MiB = 1024 * 1024
CONN_EXTRA: dict[str, Any] = {
    "app_id": DEMO.appid,
    "bucket": DEMO.bucket,
    "api_version": "v1",
    "slice_size": MiB,
    "simple_threshold": MiB,
    "max_workers": 2,
    "max_retries": 2,
    "connect_timeout": 2,
    "read_timeout": 30,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DeploymentError(AssertionError):
    """A service did not come up, or a state was not reached in time (the message has the logs' tails)."""


@dataclass
class Service:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    #: Set by a test that stops this service on purpose: its exit is then no error.
    may_exit: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


@dataclass
class Deployment:
    """One deployment under ``root``. ``executor`` is ``LocalExecutor`` or ``CeleryExecutor``."""

    root: Path
    executor: str = "LocalExecutor"
    dag_files: tuple[Path, ...] = ()
    extra_env: dict[str, str] = field(default_factory=dict)
    services: list[Service] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.home = self.root / "airflow_home"
        self.dags = self.root / "dags"
        self.logs = self.root / "service-logs"
        for d in (self.home, self.dags, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        for f in self.dag_files:
            shutil.copy(f, self.dags / f.name)
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.emulator_url = ""
        self.http = requests.Session()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "COS_"))}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": self.executor,
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__BASE_URL": self.api_url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
                # Only runs made through the API: the example DAG's @daily schedule must not start its own.
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                # Log servers of the scheduler/workers and the triggerer: never the fixed default ports.
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "PYTHONWARNINGS": "ignore",
            }
        )
        env.update(self.extra_env)
        self.env = env

    # ------------------------------------------------------------------------------------ processes
    def _popen(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, stdout: int | None = None
    ) -> Service:
        log = self.logs / f"{name}.log"
        with open(log, "ab") as fh:
            popen = subprocess.Popen(
                argv,
                cwd=self.root,
                env=env or self.env,
                stdin=subprocess.DEVNULL,
                stdout=stdout if stdout is not None else fh,
                stderr=fh,
                start_new_session=True,
            )
        service = Service(name, popen, log)
        self.services.append(service)
        return service

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> Service:
        """``airflow <args>`` as a service."""
        return self._popen(name, [sys.executable, "-m", "airflow", *args], env=env)

    def airflow(self, *args: str, timeout: float = 180) -> str:
        """``airflow <args>`` run to completion; its output (raises on failure)."""
        out = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if out.returncode != 0:
            raise DeploymentError(f"airflow {' '.join(args)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
        return out.stdout

    def start_emulator(self, timeout: float = 30) -> str:
        """The emulator CLI on a free port (DEMO credentials); its URL once it printed it."""
        service = self._popen(
            "emulator",
            emulator_command(
                self.root / "emulator-data",
                "--appid",
                DEMO.appid,
                "--bucket",
                DEMO.bucket,
                "--secret-id",
                DEMO.secret_id,
                "--secret-key",
                DEMO.secret_key,
            ),
            stdout=subprocess.PIPE,
        )
        assert service.popen.stdout is not None
        ready, _, _ = select.select([service.popen.stdout], [], [], timeout)
        line = service.popen.stdout.readline().decode().strip() if ready else ""
        if not line.startswith("http://"):
            raise DeploymentError(f"emulator did not print its URL: {line!r}\n{service.tail()}")
        self.emulator_url = line
        return line

    def start_redis(self, timeout: float = 30) -> str:
        """Debian's ``redis-server`` on a free port, no persistence; its URL once it answers PING."""
        port = free_port()
        data = self.root / "redis"
        data.mkdir(exist_ok=True)
        self._popen(
            "redis",
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(data),
            ],
        )

        def pong() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    return sock.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        self.wait_until("redis-server answers PING", pong, timeout)
        return f"redis://127.0.0.1:{port}"

    def start_celery_worker(self, name: str) -> Service:
        """``airflow celery worker`` named ``name`` with local directories of its own (temp dir, local
        checkpoint dir, task logs), concurrency 1, no log server; ``$COS_TEST_WORKER_NAME`` is the
        hostname its task instances report."""
        local = self.root / name
        env = dict(self.env)
        for var, sub in (
            ("TMPDIR", "tmp"),
            ("COS_CHECKPOINT_DIR", "checkpoints"),
            ("AIRFLOW__LOGGING__BASE_LOG_FOLDER", "logs"),
        ):
            (local / sub).mkdir(parents=True, exist_ok=True)
            env[var] = str(local / sub)
        env.update(
            {
                "COS_TEST_WORKER_NAME": name,
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.deployment.hostname.worker_hostname",
                "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
            }
        )
        return self.start(
            name,
            "celery",
            "worker",
            "--celery-hostname",
            f"{name}@%h",
            "--concurrency",
            "1",
            "--pid",
            str(local / "worker.pid"),
            "--skip-serve-logs",
            env=env,
        )

    def api_healthy(self) -> bool:
        try:
            return self.http.get(f"{self.api_url}/api/v2/monitor/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def stop(self, grace: float = 5) -> None:
        """SIGTERM every service's process group at once, SIGKILL whatever of them (and of their
        descendants, which may sit in process groups of their own) is alive after ``grace`` s."""
        family: dict[int, psutil.Process] = {}
        for service in self.services:
            family.update((p.pid, p) for p in self._family(service.pid))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(service.pid, signal.SIGTERM)
        _, alive = psutil.wait_procs(list(family.values()), timeout=grace)
        for service in self.services:  # children started during the shutdown, too
            alive.extend(p for p in self._family(service.pid) if p.pid not in family)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(service.pid, signal.SIGKILL)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(alive, timeout=5)
        for service in self.services:
            service.popen.wait(5)
            if service.popen.stdout is not None:
                service.popen.stdout.close()
        self.http.close()

    @staticmethod
    def _family(pid: int) -> list[psutil.Process]:
        try:
            proc = psutil.Process(pid)
            return [proc, *proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def pids(self) -> set[int]:
        """Every live process started by this deployment (services and their descendants)."""
        return {p.pid for service in self.services for p in self._family(service.pid)}

    def owner(self, pid: int) -> Service | None:
        """The service that ``pid`` is, or descends from (None: not a process of this deployment)."""
        for service in self.services:
            if pid in {p.pid for p in self._family(service.pid)}:
                return service
        return None

    # ------------------------------------------------------------------------------------ waiting
    def wait_until(self, what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.25) -> T:
        """Poll ``probe`` until it returns something truthy; fail after ``timeout`` s with the logs."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise DeploymentError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.log_tails()}")
            for service in self.services:
                if service.popen.poll() is not None and not service.may_exit:
                    raise DeploymentError(
                        f"{service.name} exited ({service.popen.returncode}) while "
                        f"waiting for {what}\n{self.log_tails()}"
                    )
            time.sleep(interval)

    def log_tails(self) -> str:
        return "\n".join(f"--- {s.name} (pid {s.pid}) ---\n{s.tail()}" for s in self.services)

    # ------------------------------------------------------------------------------------ REST API
    def api(self, method: str, path: str, expect: int | tuple[int, ...] = (200, 201), **kwargs: Any) -> Any:
        resp = self.http.request(method, f"{self.api_url}/api/v2{path}", timeout=30, **kwargs)
        codes = (expect,) if isinstance(expect, int) else expect
        if resp.status_code not in codes:
            raise DeploymentError(f"{method} /api/v2{path}: HTTP {resp.status_code} {resp.text[:2000]}")
        return resp.json() if resp.content else None

    def create_cos_connection(self, conn_id: str, *, secret_key: str = DEMO.secret_key, **extra: Any) -> Any:
        return self.api(
            "POST",
            "/connections",
            json={
                "connection_id": conn_id,
                "conn_type": "cos",
                "login": DEMO.secret_id,
                "password": secret_key,
                "host": self.emulator_url,
                "extra": json.dumps({**CONN_EXTRA, **extra}),
            },
        )

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> Any:
        return self.wait_until(
            f"DAG {dag_id} parsed by the dag-processor",
            lambda: self.api("GET", f"/dags/{dag_id}", expect=(200, 404)).get("dag_id"),
            timeout,
        )

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, **body: Any) -> str:
        body.setdefault("logical_date", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        run = self.api("POST", f"/dags/{dag_id}/dagRuns", json={"conf": conf or {}, **body})
        return str(run["dag_run_id"])

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> Any:
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        def done() -> str | None:
            state = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
            return state if state in ("success", "failed") else None

        return self.wait_until(f"run {run_id} of {dag_id} to finish", done, timeout)

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        entry = self.api(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
            params={"deserialize": "true"},
        )
        return entry["value"]

    def state_store(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        """The task instance's ``context["task_state_store"]`` entries (shared by all its tries)."""
        body = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/state-store")
        return {e["key"]: e["value"] for e in body["task_state_store"]}

    def upload_checkpoint(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any] | None:
        """The operator's resume state in the task state store (keys ``cos-upload-*``), if any."""
        entries = [v for k, v in self.state_store(dag_id, run_id, task_id).items() if k.startswith("cos-upload-")]
        assert len(entries) <= 1, entries
        return entries[0] if entries else None

    # ------------------------------------------------------------------------------------ emulator
    def emulator(self, method: str, what: str, body: Any = None) -> Any:
        resp = self.http.request(method, f"{self.emulator_url}/_emulator/{what}", json=body, timeout=10)
        resp.raise_for_status()
        return resp.json().get("data")


def leftover_processes(pids: set[int]) -> list[str]:
    """Those of ``pids`` still alive (zombies excluded), described."""
    alive = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{pid} {' '.join(proc.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            pass
    return alive
