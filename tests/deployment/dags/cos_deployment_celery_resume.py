"""One upload task for the CeleryExecutor test: a try killed on one worker resumes on the other.

Used by ``tests/deployment/test_celery.py``; the local file is given as a param (the same input on both
workers, like a shared data mount), while each worker keeps its own local directories.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag

from airflow_provider_cos.operators.cos import CosSliceUploadOperator


@dag(
    dag_id="cos_deployment_celery_resume",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"local_path": Param("/nonexistent", type="string"), "cos_path": Param("/celery.bin", type="string")},
    default_args={"retries": 2, "retry_delay": pendulum.duration(seconds=2)},
    tags=["cos", "test"],
)
def cos_deployment_celery_resume() -> None:
    CosSliceUploadOperator(
        task_id="upload",
        cos_conn_id="cos_default",
        local_path="{{ params.local_path }}",
        cos_path="{{ params.cos_path }}",
    )


cos_deployment_celery_resume()
