"""One real Airflow deployment for the whole package: emulator, api-server, scheduler, dag-processor and
triggerer as processes (LocalExecutor, SQLite, temporary AIRFLOW_HOME, free ports), torn down by PID.

The deployment starts once (package scope) and is shared by the end-to-end and the browser tests.
Teardown stops every process it started and fails if any survived.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deployment.services import REPO, Deployment, leftover_processes

DAG_FILES = (
    REPO / "example_dags" / "example_cos_slice_upload.py",
    REPO / "tests" / "deployment" / "dags" / "cos_deployment_late_object.py",
    REPO / "example_dags" / "example_cos_xml_upload.py",
    REPO / "example_dags" / "example_cos_many_files.py",
    REPO / "tests" / "deployment" / "dags" / "cos_deployment_object_storage.py",
)


@pytest.fixture(scope="package")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    dep = Deployment(
        tmp_path_factory.mktemp("deployment"), dag_files=DAG_FILES, extra_env={"COS_EXAMPLE_ARTIFACT_MIB": "8"}
    )
    try:
        dep.start_emulator()
        dep.airflow("db", "migrate")
        # All four at once: the scheduler, dag-processor and triggerer need no API until a task runs.
        dep.start("api-server", "api-server", "--port", str(dep.api_port), "--host", "127.0.0.1")
        for name in ("scheduler", "dag-processor", "triggerer"):
            dep.start(name, name)
        dep.wait_until("the api-server answers /api/v2/monitor/health", dep.api_healthy, 120)
        dep.create_cos_connection("cos_default")
        dep.create_cos_connection("cos_xml", api_version="xml", region="ap-guangzhou")
        yield dep
    finally:
        pids = dep.pids()
        dep.stop()
        left = leftover_processes(pids)
        assert not left, f"processes left behind: {left}"


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where browser screenshots go: ``$COS_TEST_ARTIFACTS`` or a fresh temporary directory."""
    path = Path(os.environ.get("COS_TEST_ARTIFACTS") or tempfile.mkdtemp(prefix="cos-test-artifacts-"))
    path.mkdir(parents=True, exist_ok=True)
    return path
