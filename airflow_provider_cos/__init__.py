"""Apache Airflow provider for Tencent Cloud Object Storage (XML API and the legacy JSON API)."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""
    from airflow_provider_cos.provider_info import PROVIDER_INFO

    return PROVIDER_INFO
