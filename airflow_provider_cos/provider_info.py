"""The provider dictionary (completed by the Airflow integration)."""

from __future__ import annotations

from typing import Any

PROVIDER_INFO: dict[str, Any] = {
    "package-name": "airflow-provider-cos",
    "name": "Tencent COS (JSON API)",
    "description": "Tencent Cloud Object Storage JSON API: slice upload, completion sensor, local emulator.",
    "versions": ["0.1.0"],
}
