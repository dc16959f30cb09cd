"""The transfer engine: fast, bounded, resumable uploads and downloads over the JSON API. No Airflow imports.

Public names (docs/design.md): :class:`CosClient`, :class:`TransferConfig`, :class:`RetryPolicy`,
:class:`UploadResult`, :class:`DownloadResult`, :class:`CheckpointStore`, :class:`LocalCheckpointStore`,
:class:`ProgressEvent`, :data:`ProgressCallback`, :class:`LoggingProgress`.
"""

from __future__ import annotations

from airflow_provider_cos.transfer.checkpoint import CheckpointStore, LocalCheckpointStore, UploadCheckpoint
from airflow_provider_cos.transfer.client import CosClient
from airflow_provider_cos.transfer.config import TransferConfig
from airflow_provider_cos.transfer.coordinator import InlineExecutor, inline_executor, thread_executor
from airflow_provider_cos.transfer.download import DownloadResult
from airflow_provider_cos.transfer.progress import LoggingProgress, ProgressCallback, ProgressEvent
from airflow_provider_cos.transfer.results import UploadResult
from airflow_provider_cos.transfer.retry import RetryPolicy

__all__ = [
    "CheckpointStore",
    "CosClient",
    "DownloadResult",
    "InlineExecutor",
    "LocalCheckpointStore",
    "LoggingProgress",
    "ProgressCallback",
    "ProgressEvent",
    "RetryPolicy",
    "TransferConfig",
    "UploadCheckpoint",
    "UploadResult",
    "inline_executor",
    "thread_executor",
]
