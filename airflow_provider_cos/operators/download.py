"""CosToLocalFilesystemOperator: download one COS object to a local file, resumable across retries."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_provider_cos.hooks.connection import DEFAULT_CONN_ID
from airflow_provider_cos.hooks.cos import CosHook
from airflow_provider_cos.operators.checkpoint import NEXT_TRY_RESUMES
from airflow_provider_cos.protocol.errors import (
    CosAuthError,
    CosCancelledError,
    CosConfigError,
    CosError,
    CosInvalidRequestError,
    CosNotFoundError,
)
from airflow_provider_cos.protocol.paths import normalize_file_path, validate_bucket

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_cos.transfer import DownloadResult, ProgressCallback

#: Keys pushed to XCom besides ``return_value`` (= the local path).
XCOM_KEYS = ("resource_path", "sha1", "crc64", "size")


def split_resource_path(resource_path: str) -> tuple[str, str, str]:
    """``/<appid>/<bucket>/<path>`` (what an upload returns) as ``(appid, bucket, path)``."""
    parts = resource_path.split("/", 3) if isinstance(resource_path, str) else []
    if len(parts) != 4 or parts[0] or not parts[1] or not parts[2] or not parts[3]:
        raise CosConfigError(f"resource_path {resource_path!r} is not /<appid>/<bucket>/<path>")
    return parts[1], parts[2], normalize_file_path("/" + parts[3])


class CosToLocalFilesystemOperator(BaseOperator):
    """Download the object at ``cos_path`` (or ``resource_path``) to ``local_path``.

    Ranged parts in parallel into a temporary file beside ``local_path``, verified against the object's
    SHA-1, then renamed into place: ``local_path`` is never half-written. An Airflow retry on the same
    worker resumes from the parts already fetched.

    :param cos_path: object path in the bucket, e.g. ``/exports/2024/data.bin`` (templated).
    :param local_path: file to write (templated); its folder is created.
    :param bucket: bucket name without ``-<appid>`` (templated); default: the connection's ``bucket``.
    :param resource_path: instead of ``cos_path``/``bucket``: the ``/<appid>/<bucket>/<path>`` an upload
        returned (templated, so ``upload.output`` works); its appid must be the connection's.
    :param cos_conn_id: the ``cos`` connection.
    :param max_workers: parts in flight (default: connection's ``max_workers``).

    XCom: ``return_value`` = the local path; keys ``resource_path``, ``size`` and the verified checksum:
    ``sha1`` (JSON generations) or ``crc64`` (XML).
    """

    template_fields: Sequence[str] = ("cos_path", "local_path", "bucket", "resource_path")
    ui_color = "#c6e2ff"

    def __init__(
        self,
        *,
        local_path: str,
        cos_path: str | None = None,
        bucket: str | None = None,
        resource_path: str | None = None,
        cos_conn_id: str = DEFAULT_CONN_ID,
        max_workers: int | None = None,
        progress_interval: float = 5.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (cos_path is None) == (resource_path is None):
            raise ValueError("give exactly one of cos_path and resource_path")
        if resource_path is not None and bucket is not None:
            raise ValueError("resource_path names the bucket; do not pass bucket too")
        self.local_path = local_path
        self.cos_path = cos_path
        self.bucket = bucket
        self.resource_path = resource_path
        self.cos_conn_id = cos_conn_id
        self.max_workers = max_workers
        self.progress_interval = progress_interval

    @cached_property
    def hook(self) -> CosHook:
        return CosHook(self.cos_conn_id, max_workers=self.max_workers)

    def _where(self) -> tuple[str, str | None]:
        """The object's path and bucket, validated (AirflowFailException names what is wrong)."""
        try:
            if self.resource_path is not None:
                appid, bucket, path = split_resource_path(self.resource_path)
                if appid != self.hook.app_id:
                    raise AirflowFailException(
                        f"resource_path {self.resource_path!r} is of appid {appid}, the connection "
                        f"{self.cos_conn_id!r} of {self.hook.app_id}"
                    )
                return path, bucket
            if not self.cos_path or self.cos_path.endswith("/"):
                raise AirflowFailException(f"cos_path {self.cos_path!r} must name an object (not a folder)")
            if self.bucket:
                validate_bucket(self.bucket)
            return normalize_file_path(self.cos_path), self.bucket
        except CosError as exc:
            raise AirflowFailException(f"invalid object to download: {exc.message}") from exc

    def execute(self, context: Context) -> str:
        if not self.local_path:
            raise AirflowFailException("local_path is empty")
        if os.path.isdir(self.local_path):
            raise AirflowFailException(f"local_path {self.local_path!r} is a directory; give the file to write")
        cos_path, bucket_arg = self._where()
        hook = self.hook
        try:
            bucket = hook.resolve_bucket(bucket_arg)
        except CosConfigError as exc:
            raise AirflowFailException(f"COS connection {self.cos_conn_id!r} is invalid: {exc.message}") from exc
        where = f"cos://{bucket}-{hook.app_id}{cos_path} (connection {self.cos_conn_id!r})"
        self.log.info("Downloading %s to %s", where, self.local_path)
        result = self._download(hook, cos_path, bucket, where)
        self.log.info(
            "Downloaded %s: %d bytes in %.1f s (%d fetched in %d part(s), %d resumed); verified %s",
            cos_path,
            result.size,
            result.elapsed,
            result.bytes_received,
            result.parts_received,
            result.bytes_resumed,
            f"SHA-1 {result.sha1}" if result.sha1 else f"CRC64 {result.crc64}" if result.crc64 else "size only",
        )
        ti = context["ti"]
        for key in XCOM_KEYS:
            ti.xcom_push(key=key, value=getattr(result, key))
        return result.local_path

    def progress_callback(self) -> ProgressCallback:
        """Progress lines (percent, MB/s, ETA) in the task log, at most every ``progress_interval`` s."""
        from airflow_provider_cos.transfer import LoggingProgress

        return LoggingProgress(self.log, min_interval=self.progress_interval)  # type: ignore[arg-type]

    def _download(self, hook: CosHook, cos_path: str, bucket: str, where: str) -> DownloadResult:
        try:
            return hook.download_file(cos_path, self.local_path, bucket, progress=self.progress_callback())
        except CosConfigError as exc:  # includes CosLocalFileError
            raise AirflowFailException(f"Cannot download {where} to {self.local_path!r}: {exc}") from exc
        except CosAuthError as exc:
            raise AirflowFailException(f"COS rejected the credentials for {where}: {exc}") from exc
        except CosNotFoundError as exc:
            raise AirflowFailException(f"{where} does not exist: {exc}") from exc
        except CosInvalidRequestError as exc:
            raise AirflowFailException(f"COS refused the download of {where}: {exc}") from exc
        except CosCancelledError as exc:
            raise AirflowException(f"Download of {where} was cancelled; {NEXT_TRY_RESUMES}") from exc
        except CosError as exc:
            raise AirflowException(f"Download of {where} failed: {exc}; {NEXT_TRY_RESUMES}") from exc

    def on_kill(self) -> None:
        """Cancel the transfer; the parts already written stay for the next try."""
        if "hook" in self.__dict__:
            self.log.info("Cancelling the COS download")
            self.hook.cancel()
