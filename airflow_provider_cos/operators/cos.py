"""CosSliceUploadOperator: upload one local file to COS, resumable across Airflow retries."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, AssetAlias, BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_provider_cos.hooks.connection import DEFAULT_CONN_ID
from airflow_provider_cos.hooks.cos import CosHook, cos_asset_uri
from airflow_provider_cos.links import CosObjectLink, object_link_url
from airflow_provider_cos.operators.checkpoint import NEXT_TRY_RESUMES, TaskStateCheckpointStore
from airflow_provider_cos.protocol.errors import (
    CosAlreadyExistsError,
    CosAuthError,
    CosCancelledError,
    CosConfigError,
    CosError,
    CosInvalidRequestError,
    CosNotFoundError,
    CosUploadConflictError,
)
from airflow_provider_cos.protocol.paths import (
    normalize_file_path,
    normalize_folder_path,
    validate_appid,
    validate_bucket,
)

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.types import JsonValue  # type: ignore[attr-defined]

    from airflow_provider_cos.transfer import CheckpointStore, ProgressCallback, UploadResult

#: Keys pushed to XCom besides ``return_value`` (= ``resource_path``).
XCOM_KEYS = ("access_url", "source_url", "url", "sha1", "size", "instant", "etag", "crc64")


def _templated(value: object) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


class CosSliceUploadOperator(BaseOperator):
    """Upload ``local_path`` to ``cos_path`` (simple upload below the connection's ``simple_threshold``,
    resumable slice upload above it).

    :param local_path: local file to upload (templated). Many files in one task: a directory (with
        ``cos_path`` a folder ending in ``/``; sub-folders kept), a glob pattern (``**`` allowed; paths
        kept relative to the part before the first wildcard) or a list of files (base names); ``cos_path``
        is then the folder prefix and the task returns the list of ``resource_path``s. Files and their
        slices share one bounded pool; a file already stored with the same content is skipped (so a
        retry sends only what failed); if some files fail the task fails with a summary naming them.
    :param cos_path: object path in the bucket, e.g. ``/exports/2024/data.bin`` (templated); must not end
        with ``/`` nor contain ``? * : | \\ < > "``.
    :param bucket: bucket name without ``-<appid>`` (templated); default: the connection's ``bucket``.
    :param cos_conn_id: the ``cos`` connection.
    :param create_parents: create the missing folders above ``cos_path`` first (the API requires them).
    :param overwrite: replace an existing object (True, the default) or fail if one exists (False maps to
        ``insertOnly=1``).
    :param slice_size: slice (v1/v2, a request) or part (xml) size in bytes (default: the connection's
        ``slice_size``, else 1 MiB for v1/v2 and 8 MiB for xml).
    :param max_workers: slices in flight (default: connection's ``max_workers``).
    :param biz_attr: free-form attribute stored with the object (templated).
    :param verify: check the stored object's size and SHA-1 after the upload.
    :param app_id: the account's APPID, only needed to declare the outlet Asset at parse time
        (``cos://<bucket>-<appid>/<path>``); it is checked against the connection at run time.
    :param emit_asset: when no ``outlets`` were passed, declare the object automatically: as the outlet
        Asset itself when ``app_id``, ``bucket`` and ``cos_path`` are given and not templated, otherwise
        as an ``AssetAlias`` (``cos-upload:<dag_id>.<task_id>``) to which each run adds the uploaded
        object's Asset, so DAGs scheduled on ``Asset("cos://<bucket>-<appid>/<path>")`` still trigger.

    XCom: ``return_value`` = ``resource_path``; keys ``access_url``, ``source_url``, ``url``, ``sha1``,
    ``size``, ``instant``, ``etag`` and ``crc64`` (``xml``: the object's ETag and CRC-64 as a decimal
    string; ``sha1`` is empty there; empty/``None`` for v1/v2).

    The DAG is the same for every generation: the connection's ``api_version`` (``v1``, ``v2``, ``xml``)
    decides the protocol.
    """

    template_fields: Sequence[str] = ("local_path", "cos_path", "bucket", "biz_attr")
    operator_extra_links = (CosObjectLink(),)
    ui_color = "#c6e2ff"

    def __init__(
        self,
        *,
        local_path: str | list[str],
        cos_path: str,
        bucket: str | None = None,
        cos_conn_id: str = DEFAULT_CONN_ID,
        create_parents: bool = True,
        overwrite: bool = True,
        slice_size: int | None = None,
        max_workers: int | None = None,
        biz_attr: str | None = None,
        verify: bool = True,
        app_id: str | int | None = None,
        emit_asset: bool = True,
        progress_interval: float = 5.0,
        **kwargs: Any,
    ) -> None:
        if emit_asset and not kwargs.get("outlets") and app_id is not None and bucket:
            uri = self.static_asset_uri(app_id, bucket, cos_path)
            if uri is not None:
                kwargs["outlets"] = [Asset(uri=uri, name=uri)]
        super().__init__(**kwargs)
        if emit_asset and not self.outlets:
            # The URI needs the connection's APPID (not read at parse time) or a rendered template.
            self.outlets = [AssetAlias(name=f"cos-upload:{self.dag_id or '-'}.{self.task_id}")]
        self.local_path = local_path
        self.cos_path = cos_path
        self.bucket = bucket
        self.cos_conn_id = cos_conn_id
        self.create_parents = create_parents
        self.overwrite = overwrite
        self.slice_size = slice_size
        self.max_workers = max_workers
        self.biz_attr = biz_attr
        self.verify = verify
        self.app_id = None if app_id is None else str(app_id)
        self.progress_interval = progress_interval
        self.executed = False  # set when execute() starts; read by CosObjectLink
        self.object_url: str | None = None

    @staticmethod
    def static_asset_uri(app_id: str | int, bucket: str, cos_path: str) -> str | None:
        """The outlet URI when every part is known at parse time, else None."""
        if any(_templated(v) for v in (str(app_id), bucket, cos_path)):
            return None
        try:
            return cos_asset_uri(validate_appid(app_id), validate_bucket(bucket), cos_path)
        except CosError:
            return None  # reported with a clear message when the task runs

    @cached_property
    def hook(self) -> CosHook:
        return CosHook(self.cos_conn_id, slice_size=self.slice_size, max_workers=self.max_workers, verify=self.verify)

    # ------------------------------------------------------------------------------ execution
    def validate_local_inputs(self) -> str:
        """Everything checkable without the network; returns the normalized cos_path."""
        path = self.local_path
        assert isinstance(path, str)  # a list is a batch (is_batch)
        if not path:
            raise AirflowFailException("local_path is empty")
        if not os.path.exists(path):
            raise AirflowFailException(f"local_path {path!r} does not exist")
        if os.path.isdir(path):
            raise AirflowFailException(f"local_path {path!r} is a directory; give a file")
        if not os.path.isfile(path):
            raise AirflowFailException(f"local_path {path!r} is not a regular file")
        try:
            with open(path, "rb") as fh:
                fh.read(1)
        except OSError as exc:
            raise AirflowFailException(f"local_path {path!r} is not readable: {exc.strerror or exc}") from exc
        if self.cos_path and self.cos_path.endswith("/"):
            raise AirflowFailException(f"cos_path {self.cos_path!r} ends with '/': give the object's file path")
        try:
            cos_path = normalize_file_path(self.cos_path)
        except CosError as exc:
            raise AirflowFailException(f"cos_path is invalid: {exc.message} ({self.cos_path!r})") from exc
        if self.bucket:
            try:
                validate_bucket(self.bucket)
            except CosConfigError as exc:
                raise AirflowFailException(exc.message) from exc
        return cos_path

    def checkpoint_store(self, context: Context) -> CheckpointStore:
        store = context.get("task_state_store")
        if store is not None:
            return TaskStateCheckpointStore(store)
        from airflow_provider_cos.transfer import LocalCheckpointStore

        self.log.info("task_state_store unavailable: resume state kept in a local file (this machine only)")
        return LocalCheckpointStore()

    def progress_callback(self) -> ProgressCallback:
        """Progress lines (percent, MB/s, ETA) in the task log, at most every ``progress_interval`` s."""
        from airflow_provider_cos.transfer import LoggingProgress

        return LoggingProgress(self.log, min_interval=self.progress_interval)  # type: ignore[arg-type]

    def is_batch(self) -> bool:
        """Many files: ``local_path`` is a list, a glob pattern, or a directory with ``cos_path`` a folder."""
        import glob

        path = self.local_path
        if not isinstance(path, str):
            return True
        return glob.has_magic(path) or (os.path.isdir(path) and bool(self.cos_path) and self.cos_path.endswith("/"))

    def execute(self, context: Context) -> str | list[str]:
        self.executed = True
        if self.is_batch():
            return self._execute_many(context)
        cos_path = self.validate_local_inputs()
        hook = self.hook
        try:
            bucket = hook.resolve_bucket(self.bucket)
            if self.app_id is not None and self.app_id != hook.app_id:
                self.log.warning(
                    "app_id %s given to the task differs from the connection's %s; the outlet "
                    "Asset URI will not match the uploaded object",
                    self.app_id,
                    hook.app_id,
                )
        except CosConfigError as exc:
            raise AirflowFailException(f"COS connection {self.cos_conn_id!r} is invalid: {exc.message}") from exc

        size = os.path.getsize(str(self.local_path))
        self.log.info("Uploading %s (%d bytes) to cos://%s-%s%s", self.local_path, size, bucket, hook.app_id, cos_path)
        result = self._upload(hook, cos_path, bucket, self.progress_callback(), self.checkpoint_store(context))
        self.log.info(
            "Uploaded %s: %d bytes in %.1f s (%s); resource_path %s",
            cos_path,
            result.size,
            result.elapsed,
            "instant upload"
            if result.instant
            else f"{result.bytes_sent} bytes sent in {result.slices_sent} "
            + ("part(s)" if result.method == "multipart" else "slice(s)"),
            result.resource_path,
        )
        self.object_url = object_link_url(hook.config, bucket, cos_path, result.access_url)
        self._publish(context, result, hook.asset_uri(cos_path, bucket))
        return result.resource_path

    def _execute_many(self, context: Context) -> list[str]:
        """Upload a directory, glob or list under the folder ``cos_path``; return the resource_paths.

        Files already stored with the same content are skipped, so a retry sends only what failed. If any
        file fails, the task fails (and may retry) with a summary naming those files."""
        from airflow_provider_cos.transfer.batch import expand_local_paths

        if not self.cos_path or not self.cos_path.endswith("/"):
            raise AirflowFailException(
                f"local_path {self.local_path!r} is many files: cos_path {self.cos_path!r} must be the folder "
                "they go to, ending with '/'"
            )
        try:
            prefix = normalize_folder_path(self.cos_path)
            items = expand_local_paths(self.local_path, prefix)
            bucket = self.hook.resolve_bucket(self.bucket)
        except CosError as exc:
            raise AirflowFailException(f"Cannot upload {self.local_path!r}: {exc}") from exc
        hook = self.hook
        total = len(items)
        self.log.info("Uploading %d file(s) to cos://%s-%s%s", total, bucket, hook.app_id, prefix)

        def on_done(outcome: Any, done: int, count: int) -> None:
            self.log.info(
                "[%d/%d] %s %s -> %s", done, count, outcome.status, outcome.item.local_path, outcome.item.cos_path
            )

        result = hook.upload_files(
            items,
            bucket,
            overwrite=self.overwrite,
            biz_attr=self.biz_attr,
            create_parents=self.create_parents,
            checkpoint_store=self.checkpoint_store(context),
            on_done=on_done,
        )
        self.log.info("%s", result.summary())
        if result.failed:
            raise AirflowException(
                f"Upload of {len(result.failed)} of {total} file(s) failed; a retry skips the "
                f"files already stored:\n{result.summary()}"
            )
        for outcome in result.outcomes:  # each object as an event of the task's AssetAlias
            for outlet in self.outlets or ():
                if isinstance(outlet, AssetAlias) and outlet.name.startswith("cos-upload:"):
                    uri = hook.asset_uri(outcome.item.cos_path, bucket)
                    context["outlet_events"][outlet].add(
                        Asset(uri=uri, name=uri), extra={"resource_path": outcome.resource_path}
                    )
        return result.resource_paths

    def _upload(
        self, hook: CosHook, cos_path: str, bucket: str, progress: ProgressCallback, checkpoint_store: CheckpointStore
    ) -> UploadResult:
        where = f"cos://{bucket}-{hook.app_id}{cos_path} (connection {self.cos_conn_id!r})"
        try:
            return hook.upload_file(
                str(self.local_path),
                cos_path,
                bucket,
                overwrite=self.overwrite,
                biz_attr=self.biz_attr,
                create_parents=self.create_parents,
                progress=progress,
                checkpoint_store=checkpoint_store,
            )
        except CosConfigError as exc:  # str(exc), not .message: a CosLocalFileError names the file there
            raise AirflowFailException(f"Invalid configuration for {where}: {exc}") from exc
        except CosAuthError as exc:
            raise AirflowFailException(
                f"COS rejected the credentials for {where} (check SecretId, SecretKey and app_id): {exc}"
            ) from exc
        except CosAlreadyExistsError as exc:
            if not self.overwrite:
                raise AirflowFailException(f"{where} already exists and overwrite=False: {exc}") from exc
            raise AirflowFailException(f"Upload to {where} conflicts with an existing path: {exc}") from exc
        except CosNotFoundError as exc:
            raise AirflowFailException(
                f"Bucket {bucket!r} or a folder of {cos_path!r} does not exist (app_id {hook.app_id}): {exc}"
            ) from exc
        except CosInvalidRequestError as exc:
            raise AirflowFailException(f"COS refused the upload to {where}: {exc}") from exc
        except CosUploadConflictError as exc:
            raise AirflowException(f"Upload to {where} did not start: {exc}") from exc
        except CosCancelledError as exc:
            raise AirflowException(f"Upload to {where} was cancelled; {NEXT_TRY_RESUMES}") from exc
        except CosError as exc:
            raise AirflowException(f"Upload to {where} failed: {exc}; {NEXT_TRY_RESUMES}") from exc
        except OSError as exc:
            raise AirflowFailException(f"Cannot read {self.local_path!r}: {exc}") from exc

    def _publish(self, context: Context, result: UploadResult, asset_uri: str) -> None:
        ti = context["ti"]
        for key in XCOM_KEYS:
            ti.xcom_push(key=key, value=getattr(result, key))
        extra: dict[str, JsonValue] = {"resource_path": result.resource_path, "sha1": result.sha1, "size": result.size}
        if result.crc64 is not None:  # xml: the object's ETag and CRC64 (no SHA-1 in that API)
            extra.update(etag=result.etag, crc64=result.crc64)
        for outlet in self.outlets or ():
            if isinstance(outlet, Asset) and outlet.uri == asset_uri:
                context["outlet_events"][outlet].extra.update(extra)
            elif isinstance(outlet, AssetAlias) and outlet.name.startswith("cos-upload:"):
                context["outlet_events"][outlet].add(Asset(uri=asset_uri, name=asset_uri), extra=extra)

    def on_kill(self) -> None:
        """Cancel the transfer: no new slices are sent; the resume state stays for the next try."""
        if "hook" in self.__dict__:
            self.log.info("Cancelling the COS upload")
            self.hook.cancel()

    # ------------------------------------------------------------------------------ lineage
    def get_openlineage_facets_on_start(self) -> Any:
        return self._lineage()

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        return self._lineage()

    def _lineage(self) -> Any:
        """Input: the local file; output: the object. None when the OpenLineage provider is absent."""
        try:
            from airflow.providers.common.compat.openlineage.facet import Dataset
            from airflow.providers.openlineage.extractors import OperatorLineage
        except ImportError:
            return None
        bucket = self.bucket or ""
        app_id = self.app_id or ""
        try:
            hook = self.hook
            bucket = hook.resolve_bucket(self.bucket)
            app_id = hook.app_id
        except Exception:  # lineage must never fail the task
            self.log.debug("COS connection unavailable for lineage; using task arguments")
        namespace = f"cos://{bucket}-{app_id}" if app_id else f"cos://{bucket}"
        paths = [self.local_path] if isinstance(self.local_path, str) else list(self.local_path)
        return OperatorLineage(
            inputs=[Dataset(namespace=f"file://{socket.getfqdn()}", name=os.path.abspath(p)) for p in paths],
            outputs=[Dataset(namespace=namespace, name=self.cos_path.lstrip("/"))],
        )
