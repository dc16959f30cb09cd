"""Fixtures of the Airflow integration tests: a migrated metadata DB, a running emulator, connections.

The root ``tests/conftest.py`` already points AIRFLOW_HOME at a temporary directory and DAGS_FOLDER at
``example_dags`` before anything imports airflow.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

MiB = 1024 * 1024
#: Small transfers in tests: 1 MiB slices, slice upload above 1 MiB.
TEST_EXTRA = {
    "slice_size": MiB,
    "simple_threshold": MiB,
    "max_workers": 2,
    "max_retries": 2,
    "connect_timeout": 2,
    "read_timeout": 20,
}


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Create the metadata DB once per session (in-process ``airflow db migrate``)."""
    from airflow.utils.db import initdb

    marker = Path(os.environ["AIRFLOW_HOME"]) / ".cos-tests-db-ready"
    if not marker.exists():
        initdb()
        marker.touch()


# The shared emulator fixtures (``emulator``, ``emulator_factory``): real sockets, port 0, temp data dir.
from tests.fixtures_emulator import emulator, emulator_factory  # noqa: E402,F401
from tests.support.custom_domain import bound, proxy  # noqa: E402,F401  (custom-domain fixtures)


def conn_json(
    url: str, *, api_version: str = "v1", secret_key: str | None = None, bucket: str | None = None, **extra: Any
) -> str:
    from airflow_provider_cos.emulator import DEMO

    return json.dumps(
        {
            "conn_type": "cos",
            "login": DEMO.secret_id,
            "password": DEMO.secret_key if secret_key is None else secret_key,
            "host": url,
            "extra": {
                "app_id": DEMO.appid,
                "bucket": bucket or DEMO.bucket,
                "api_version": api_version,
                **TEST_EXTRA,
                **extra,
            },
        }
    )


@pytest.fixture
def cos_conns(
    emulator: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    """``cos_default`` (v1), ``cos_v2`` and ``cos_xml`` pointing at the emulator, as AIRFLOW_CONN_* variables."""
    monkeypatch.setenv("AIRFLOW_CONN_COS_DEFAULT", conn_json(emulator.url))
    monkeypatch.setenv("AIRFLOW_CONN_COS_V2", conn_json(emulator.url, api_version="v2"))
    monkeypatch.setenv("AIRFLOW_CONN_COS_XML", conn_json(emulator.url, api_version="xml", region="ap-guangzhou"))
    return emulator


def make_file(path: Path, size: int, seed: int = 7) -> Path:
    import random

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, MiB)
            fh.write(rng.randbytes(n))
            left -= n
    return path


def run_dag(dag: Any, **kwargs: Any) -> Any:
    """``dag.test()`` for a DAG built in a test: on Airflow 3.3 it must be serialized in the DB first."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    with create_session() as session:
        update_dag_parsing_results_in_db(
            "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session
        )
    return dag.test(**kwargs)


def task_states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
