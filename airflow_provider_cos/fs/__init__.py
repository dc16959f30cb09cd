"""fsspec filesystems registered with Airflow (ObjectStoragePath)."""
