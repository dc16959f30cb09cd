"""Apache Airflow provider for Tencent Cloud Object Storage's JSON API."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def _register_cos_scheme() -> None:
    """Make ``cos://`` known to fsspec/universal-pathlib (``ObjectStoragePath`` builds the path before it
    asks Airflow for the filesystem): by class path, so nothing is imported here."""
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec comes with Airflow
        return
    fsspec.register_implementation("cos", "airflow_provider_cos.fs.cos.CosFileSystem", clobber=True)


_register_cos_scheme()


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""
    from airflow_provider_cos.provider_info import PROVIDER_INFO

    return PROVIDER_INFO
