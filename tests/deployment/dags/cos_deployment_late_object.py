"""A deferrable completion sensor waiting for an object the test uploads only once the sensor deferred.

Used by ``tests/deployment/test_deployment.py``: the wait must happen in the triggerer process.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag

from airflow_provider_cos.sensors.cos import CosUploadCompleteSensor


@dag(
    dag_id="cos_deployment_late_object",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"cos_path": Param("/late/object.bin", type="string")},
    tags=["cos", "test"],
)
def cos_deployment_late_object() -> None:
    CosUploadCompleteSensor(
        task_id="wait_late",
        cos_conn_id="cos_default",
        cos_path="{{ params.cos_path }}",
        deferrable=True,
        poke_interval=1,
        timeout=300,
    )


cos_deployment_late_object()
