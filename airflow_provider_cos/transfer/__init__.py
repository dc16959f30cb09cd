"""The transfer engine: fast, bounded, resumable uploads to COS over the JSON API. No Airflow imports.

Public names (docs/design.md): :class:`CosClient`, :class:`TransferConfig`, :class:`RetryPolicy`,
:class:`UploadResult`, :class:`CheckpointStore`, :class:`LocalCheckpointStore`, :class:`ProgressEvent`,
:data:`ProgressCallback`, :class:`LoggingProgress`.
"""

from __future__ import annotations

from airflow_provider_cos.transfer.checkpoint import CheckpointStore, LocalCheckpointStore, UploadCheckpoint
from airflow_provider_cos.transfer.client import CosClient
from airflow_provider_cos.transfer.config import TransferConfig
from airflow_provider_cos.transfer.coordinator import InlineExecutor, inline_executor, thread_executor
from airflow_provider_cos.transfer.progress import LoggingProgress, ProgressCallback, ProgressEvent
from airflow_provider_cos.transfer.results import UploadResult
from airflow_provider_cos.transfer.retry import RetryPolicy

__all__ = [
    "CheckpointStore",
    "CosClient",
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
