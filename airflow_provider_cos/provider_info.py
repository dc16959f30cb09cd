"""The provider dictionary Airflow's ProvidersManager reads (entry point ``apache_airflow_provider``).

The ``cos`` connection form (``conn-fields`` / ``ui-field-behaviour``) is built from the field table in
:mod:`airflow_provider_cos.hooks.connection`, the same table the hook's classmethods use.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_cos import __version__
from airflow_provider_cos.hooks.connection import (
    CONN_TYPE,
    HOOK_NAME,
    provider_conn_fields,
    provider_ui_field_behaviour,
)

INTEGRATION = "Tencent Cloud Object Storage (COS)"

PROVIDER_INFO: dict[str, Any] = {
    "package-name": "airflow-provider-cos",
    "name": "Tencent COS",
    "description": "Tencent Cloud Object Storage JSON API: slice upload, completion sensor, local emulator.",
    "versions": [__version__],
    "integrations": [
        {
            "integration-name": INTEGRATION,
            "external-doc-url": "https://cloud.tencent.com/product/cos",
            "tags": ["service"],
        }
    ],
    "hooks": [{"integration-name": INTEGRATION, "python-modules": ["airflow_provider_cos.hooks.cos"]}],
    "operators": [
        {
            "integration-name": INTEGRATION,
            "python-modules": ["airflow_provider_cos.operators.cos", "airflow_provider_cos.operators.download"],
        }
    ],
    "sensors": [{"integration-name": INTEGRATION, "python-modules": ["airflow_provider_cos.sensors.cos"]}],
    "triggers": [{"integration-name": INTEGRATION, "python-modules": ["airflow_provider_cos.triggers.cos"]}],
    "extra-links": ["airflow_provider_cos.links.CosObjectLink"],
    "filesystems": ["airflow_provider_cos.fs.cos"],
    "connection-types": [
        {
            "hook-class-name": "airflow_provider_cos.hooks.cos.CosHook",
            "hook-name": HOOK_NAME,
            "connection-type": CONN_TYPE,
            "conn-fields": provider_conn_fields(),
            "ui-field-behaviour": provider_ui_field_behaviour(),
        }
    ],
}
