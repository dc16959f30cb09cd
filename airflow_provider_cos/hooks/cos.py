"""CosHook: the Airflow connection turned into one :class:`~airflow_provider_cos.transfer.CosClient`.

The hook does no I/O in ``__init__``; the connection is read at first use and validated there (a bad
connection raises :class:`CosConfigError` naming the field). One hook owns one client, i.e. one HTTP
session with its connection pool. All protocol and transfer logic lives below, in ``transfer/``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from airflow_provider_cos.hooks.connection import (
    CONN_TYPE,
    DEFAULT_CONN_ID,
    HOOK_NAME,
    CosConnectionConfig,
    form_widgets,
    hook_ui_field_behaviour,
)
from airflow_provider_cos.hooks.masking import no_short_secret_warning
from airflow_provider_cos.protocol.errors import (
    CosAlreadyExistsError,
    CosAuthError,
    CosConfigError,
    CosError,
    CosNotFoundError,
    CosTransportError,
)
from airflow_provider_cos.protocol.paths import normalize_file_path, normalize_folder_path

if TYPE_CHECKING:
    from airflow_provider_cos.protocol.messages import StatInfo
    from airflow_provider_cos.transfer import (
        CheckpointStore,
        CosClient,
        DownloadResult,
        ProgressCallback,
        RetryPolicy,
        UploadResult,
    )
    from airflow_provider_cos.transfer.batch import BatchItem, BatchResult, FileOutcome

log = logging.getLogger(__name__)

#: The Test button's bounds: one attempt whose connect phase waits at most TEST_CONNECT_TIMEOUT and which
#: as a whole ends within TEST_BUDGET seconds (the connection's own timeouts apply when shorter).
TEST_CONNECT_TIMEOUT = 5.0
TEST_BUDGET = 10.0


def cos_asset_uri(app_id: str | int, bucket: str, cos_path: str) -> str:
    """The Asset URI of an object: ``cos://<bucket>-<appid>/<path>`` (path without the leading ``/``)."""
    path = normalize_file_path(cos_path)
    return f"cos://{bucket}-{app_id}{path}"


def stat_to_dict(info: StatInfo) -> dict[str, Any]:
    """The object's fields as the server reported them, plus ``name`` and ``is_folder``/``complete`` flags."""
    data = dict(info.as_dict())
    data.setdefault("name", info.name)
    data["is_folder"] = info.is_folder
    data["complete"] = info.complete
    return data


class CosHook(BaseHook):
    """Talk to Tencent COS's JSON API (v1 ``/files/v1`` or v2 ``/files/v2``) through a ``cos`` connection.

    :param cos_conn_id: connection id; login = SecretId, password = SecretKey, host = endpoint base URL
        (empty: Tencent's), port = the endpoint's port, extra: ``app_id`` (required), ``bucket``,
        ``api_version``, ``region`` and transfer knobs incl. ``retry_deadline`` (see docs/airflow.md).
    """

    conn_name_attr = "cos_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = HOOK_NAME

    def __init__(
        self,
        cos_conn_id: str = DEFAULT_CONN_ID,
        *,
        slice_size: int | None = None,
        max_workers: int | None = None,
        verify: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cos_conn_id = cos_conn_id
        # Per-task overrides of the connection's transfer defaults.
        self.slice_size = slice_size
        self.max_workers = max_workers
        self.verify = verify

    # ------------------------------------------------------------------------------ connection form
    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Form fields for Airflow < 3.2 (3.2+ reads ``conn-fields`` from the provider dict instead)."""
        return form_widgets()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return hook_ui_field_behaviour()

    # ------------------------------------------------------------------------------ lazy state
    @cached_property
    def config(self) -> CosConnectionConfig:
        """The validated connection (read once, at first use); errors name the connection id."""
        try:
            return self._read_config()
        except CosConfigError as exc:
            raise CosConfigError(f"connection {self.cos_conn_id!r}: {exc.message}") from exc

    def _read_config(self) -> CosConnectionConfig:
        with no_short_secret_warning():  # "v1", "gz"... in extra are not secrets: see hooks/masking.py
            conn = self.get_connection(self.cos_conn_id)
        config = CosConnectionConfig.from_values(
            conn_id=self.cos_conn_id,
            login=conn.login,
            password=conn.password,
            host=conn.host,
            port=conn.port,
            schema=conn.schema,
            extra=conn.extra,  # the JSON text: extra_dejson would pass every value to the masker again
        )
        _mask(config.secret_key)
        if config.security_token:
            _mask(config.security_token)
        return config

    @cached_property
    def client(self) -> CosClient:
        """The one transfer client (one HTTP session) of this hook."""
        from airflow_provider_cos.transfer import RetryPolicy

        cfg = self.config
        try:
            return self._new_client(
                cfg,
                connect_timeout=cfg.connect_timeout,
                read_timeout=cfg.read_timeout,
                retry=RetryPolicy(max_attempts=cfg.max_retries + 1, deadline=cfg.retry_deadline),
            )
        except CosConfigError as exc:
            raise CosConfigError(f"connection {self.cos_conn_id!r}: {exc.message}") from exc

    def _new_client(
        self, cfg: CosConnectionConfig, *, connect_timeout: float, read_timeout: float, retry: RetryPolicy
    ) -> CosClient:
        from airflow_provider_cos.protocol.messages import CosTarget
        from airflow_provider_cos.protocol.signing import Credentials
        from airflow_provider_cos.transfer import CosClient, TransferConfig

        target = CosTarget(
            endpoint=cfg.endpoint,
            api_version=cfg.api_version,
            appid=cfg.appid,
            bucket=cfg.bucket or "",
            region=cfg.region,
            custom_domain=cfg.custom_domain,
        )
        transfer_config = TransferConfig(
            simple_threshold=cfg.simple_threshold,
            slice_size=self.slice_size or cfg.slice_size,
            max_workers=self.max_workers or cfg.max_workers,
            verify=self.verify,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retry=retry,
        )
        return CosClient(
            target=target,
            credentials=Credentials(cfg.secret_id, cfg.secret_key),
            config=transfer_config,
            security_token=cfg.security_token,
        )

    def get_conn(self) -> CosClient:
        return self.client

    def close(self) -> None:
        """Close the HTTP session if one was opened."""
        client = self.__dict__.pop("client", None)
        if client is not None:
            client.close()

    @property
    def app_id(self) -> str:
        return self.config.appid

    def resolve_bucket(self, bucket: str | None = None) -> str:
        return self.config.resolve_bucket(bucket)

    def asset_uri(self, cos_path: str, bucket: str | None = None) -> str:
        return cos_asset_uri(self.config.appid, self.resolve_bucket(bucket), cos_path)

    # ------------------------------------------------------------------------------ operations
    def upload_file(
        self,
        local_path: str,
        cos_path: str,
        bucket: str | None = None,
        *,
        overwrite: bool = True,
        biz_attr: str | None = None,
        create_parents: bool = True,
        progress: ProgressCallback | None = None,
        checkpoint_store: CheckpointStore | None = None,
    ) -> UploadResult:
        """Upload one local file (simple upload or resumable slice upload, the engine decides).

        ``overwrite=False`` sends ``insertOnly=1``: an existing object makes the upload fail.
        ``create_parents`` creates the missing folders first (the API requires them to exist).
        """
        bucket_name = self.resolve_bucket(bucket)
        return self.client.upload_file(
            local_path,
            normalize_file_path(cos_path),
            bucket=bucket_name,
            insert_only=not overwrite,
            biz_attr=biz_attr,
            progress=progress,
            checkpoint_store=checkpoint_store,
            create_parents=create_parents,
        )

    def upload_files(
        self,
        items: Sequence[BatchItem],
        bucket: str | None = None,
        *,
        overwrite: bool = True,
        biz_attr: str | None = None,
        create_parents: bool = True,
        checkpoint_store: CheckpointStore | None = None,
        on_done: Callable[[FileOutcome, int, int], object] | None = None,
    ) -> BatchResult:
        """Upload many files with one bounded pool; files already stored with the same content are skipped
        (see :mod:`airflow_provider_cos.transfer.batch`). Never raises for one file: check the result."""
        from airflow_provider_cos.transfer.batch import BatchItem

        return self.client.upload_files(
            [BatchItem(i.local_path, normalize_file_path(i.cos_path)) for i in items],
            self.resolve_bucket(bucket),
            insert_only=not overwrite,
            biz_attr=biz_attr,
            checkpoint_store=checkpoint_store,
            create_parents=create_parents,
            on_done=on_done,
        )

    def download_file(
        self,
        cos_path: str,
        local_path: str,
        bucket: str | None = None,
        *,
        progress: ProgressCallback | None = None,
    ) -> DownloadResult:
        """Download the object at ``cos_path`` into ``local_path`` (its folder is created).

        Ranged parts in parallel into ``.<name>.cosdownload`` beside the target, checked against the
        object's SHA-1, then renamed onto ``local_path``: the file is never half-written, and a failed try
        leaves the parts it fetched for the next one (see :mod:`airflow_provider_cos.transfer.download`).
        """
        return self.client.download_file(
            normalize_file_path(cos_path), local_path, bucket=self.resolve_bucket(bucket), progress=progress
        )

    def ensure_parent_folders(self, cos_path: str, bucket: str | None = None) -> list[str]:
        """Create the folders above ``cos_path`` that do not exist yet; return those created."""
        return self.client.ensure_folders(normalize_file_path(cos_path), self.resolve_bucket(bucket))

    def _stat(self, path: str, bucket: str) -> StatInfo | None:
        try:
            return self.client.stat(path, bucket=bucket)
        except CosNotFoundError as exc:
            if exc.code == -133:  # unknown bucket: not "object absent"
                raise
            return None

    def stat(self, cos_path: str, bucket: str | None = None) -> dict[str, Any] | None:
        """The object's fields as the server reports them (filesize, filelen, sha, ctime, mtime, URLs…).

        ``None`` when the path does not exist. A path ending in ``/`` is a folder.
        """
        bucket_name = self.resolve_bucket(bucket)
        path = normalize_folder_path(cos_path) if cos_path.endswith("/") else normalize_file_path(cos_path)
        info = self._stat(path, bucket_name)
        return None if info is None else stat_to_dict(info)

    def exists(self, cos_path: str, bucket: str | None = None) -> bool:
        return self.stat(cos_path, bucket) is not None

    def is_upload_complete(self, cos_path: str, bucket: str | None = None) -> bool:
        """True when the object exists and its stored length equals its declared size."""
        data = self.stat(cos_path, bucket)
        return bool(data and data["complete"])

    def uploads_in_progress(self, cos_path: str, bucket: str | None = None) -> list[str]:
        """``xml``: the UploadIds of unfinished multipart uploads at exactly ``cos_path`` (ListMultipartUploads);
        v1/v2 show an unfinished upload through :meth:`stat` instead, so ``[]``."""
        if self.config.api_version != "xml":
            return []
        return self.client.list_uploads(normalize_file_path(cos_path), self.resolve_bucket(bucket))

    def delete(self, cos_path: str, bucket: str | None = None) -> None:
        """Delete a file, or an empty folder (path ending in ``/``)."""
        bucket_name = self.resolve_bucket(bucket)
        path = normalize_folder_path(cos_path) if cos_path.endswith("/") else normalize_file_path(cos_path)
        self.client.delete(path, bucket=bucket_name)

    def create_folder(self, folder: str, bucket: str | None = None, *, exist_ok: bool = True) -> bool:
        """Create one folder; returns False when it already existed (and ``exist_ok``)."""
        bucket_name = self.resolve_bucket(bucket)
        try:
            self.client.create_folder(normalize_folder_path(folder), bucket=bucket_name)
        except CosAlreadyExistsError:
            if not exist_ok:
                raise
            return False
        return True

    def list(self, folder: str = "/", bucket: str | None = None, *, prefix: str = "") -> Iterator[dict[str, Any]]:
        """Every entry of ``folder`` whose name starts with ``prefix`` (pages are fetched as needed)."""
        bucket_name = self.resolve_bucket(bucket)
        for info in self.client.list(normalize_folder_path(folder), prefix=prefix, bucket=bucket_name):
            yield stat_to_dict(info)

    def cancel(self) -> None:
        """Stop an upload running in another thread (``on_kill``); it raises CosCancelledError soon."""
        client = self.__dict__.get("client")
        if client is not None:
            client.cancel()

    # ------------------------------------------------------------------------------ test button
    def test_connection(self) -> tuple[bool, str]:
        """One signed ``stat`` of the default bucket's root, answered within about
        :data:`TEST_BUDGET` seconds whatever the endpoint does: one attempt, no retries, connect and
        read timeouts capped. Never raises. Messages name the endpoint and bucket, never the connection
        id (the UI's Test button tests a copy under a random id the user never made)."""
        from airflow_provider_cos.transfer import RetryPolicy

        try:
            cfg = self._read_config()
        except CosConfigError as exc:
            return False, f"Invalid connection: {exc.message}"
        except Exception as exc:
            return False, f"Invalid connection: {type(exc).__name__}: {exc}"
        if not cfg.bucket:
            return False, "Invalid connection: extra field 'bucket' (default bucket) is empty; the test reads its root"
        domain = f", custom domain {cfg.custom_domain}" if cfg.api_version == "xml" and cfg.custom_domain else ""
        where = f"bucket {cfg.bucket!r} of app_id {cfg.appid} at {cfg.endpoint} ({cfg.api_version}{domain})"
        try:
            probe = self._new_client(
                cfg,
                connect_timeout=min(cfg.connect_timeout, TEST_CONNECT_TIMEOUT),
                read_timeout=min(cfg.read_timeout, TEST_BUDGET),
                retry=RetryPolicy(max_attempts=1, deadline=TEST_BUDGET),
            )
            try:
                probe.stat("/", bucket=cfg.bucket)
            finally:
                probe.close()
        except CosConfigError as exc:
            return False, f"Invalid connection: {exc.message}"
        except CosAuthError as exc:
            return False, f"Authentication failed for {where} (check SecretId/SecretKey and app_id): {exc}"
        except CosNotFoundError as exc:
            return False, f"Bucket {cfg.bucket!r} not found for app_id {cfg.appid} at {cfg.endpoint}: {exc}"
        except CosTransportError as exc:
            return False, (
                f"Cannot reach {cfg.endpoint}: no answer within {TEST_BUDGET:g} s (one attempt, no retries): {exc}"
                if "timed out" in exc.message
                else f"Cannot reach {cfg.endpoint}: {exc}"
            )
        except CosError as exc:
            return False, f"COS error from {where}: {exc}"
        except Exception as exc:
            return False, f"{type(exc).__name__} while testing {where}: {exc}"
        return True, f"Connected to {cfg.endpoint} ({cfg.api_version}): bucket {cfg.bucket} of app_id {cfg.appid}"


def _mask(secret: str) -> None:
    """Register the SecretKey with Airflow's log masker (it is usually already masked by the conn lookup)."""
    try:
        from airflow.sdk.log import mask_secret

        mask_secret(secret)
    except Exception:  # masking is best effort outside a task
        log.debug("secret masking unavailable")
