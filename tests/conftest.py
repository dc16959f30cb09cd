"""Root test configuration: an isolated AIRFLOW_HOME before anything imports airflow."""

from __future__ import annotations

import os
import tempfile

_home = os.environ.get("COS_TEST_AIRFLOW_HOME") or tempfile.mkdtemp(prefix="cos-airflow-home-")
os.environ["AIRFLOW_HOME"] = _home
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
_repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", os.path.join(_repo, "example_dags"))
