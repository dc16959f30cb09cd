"""CosUploadCompleteSensor: wait until an object is fully uploaded (``filelen == filesize``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.configuration import conf
from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout, TaskDeferralTimeout

from airflow_provider_cos.hooks.connection import DEFAULT_CONN_ID
from airflow_provider_cos.hooks.cos import CosHook
from airflow_provider_cos.protocol.errors import CosAuthError, CosConfigError, CosError
from airflow_provider_cos.triggers.cos import CosUploadCompleteTrigger, timed_out_message

if TYPE_CHECKING:
    from airflow.sdk import Context

#: The deferral timeout given to Airflow exceeds the trigger's own deadline by this much, so that the
#: trigger, which knows the object's state, normally ends the wait. Airflow's "Trigger timeout" stays a
#: backstop (no triggerer running, a stat hanging in retries); it fails with the same message.
DEFERRAL_TIMEOUT_GRACE = timedelta(seconds=60)


class CosUploadCompleteSensor(BaseSensorOperator):
    """Succeed when ``cos_path`` exists and its stored length equals its declared size.

    With ``expected_size`` / ``expected_sha1`` / ``expected_crc64`` a complete object that does not match
    fails the task (no more waiting).

    ``xml`` connections: an object exists only once complete (HeadObject finds it); while it is missing
    and ListMultipartUploads shows an upload at the key, the poke logs it as in progress.

    The stat result (a dict of the server's fields) is the XCom ``return_value``.

    ``deferrable=True`` pokes once, then hands the waiting to :class:`CosUploadCompleteTrigger` in the
    triggerer (polling every ``poke_interval`` seconds until ``timeout``).

    Both modes time out alike: :class:`AirflowSensorTimeout` with ``timed out waiting for <path>: still
    missing`` (or ``incomplete (<filelen>/<filesize>)``), so ``soft_fail`` and callbacks see one thing.
    """

    template_fields: Sequence[str] = ("cos_path", "bucket", "expected_sha1", "expected_crc64")
    ui_color = "#e0eeff"

    def __init__(
        self,
        *,
        cos_path: str,
        bucket: str | None = None,
        cos_conn_id: str = DEFAULT_CONN_ID,
        expected_size: int | None = None,
        expected_sha1: str | None = None,
        expected_crc64: str | int | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cos_path = cos_path
        self.bucket = bucket
        self.cos_conn_id = cos_conn_id
        self.expected_size = expected_size
        self.expected_sha1 = expected_sha1
        self.expected_crc64 = expected_crc64
        self.deferrable = deferrable
        self._last_stat: dict[str, Any] | None = None

    @cached_property
    def hook(self) -> CosHook:
        return CosHook(self.cos_conn_id)

    def poke(self, context: Context) -> PokeReturnValue:
        try:
            stat = self.hook.stat(self.cos_path, self.bucket)
        except (CosConfigError, CosAuthError) as exc:
            raise AirflowFailException(f"Cannot check {self.cos_path}: {exc}") from exc
        except CosError as exc:
            if exc.retryable:
                self.log.warning("stat of %s failed, trying again next poke: %s", self.cos_path, exc)
                return PokeReturnValue(is_done=False)
            raise AirflowFailException(f"Cannot check {self.cos_path}: {exc}") from exc
        self._last_stat = stat
        if stat is None:
            self.log_upload_in_progress()
        return self.evaluate(stat)

    def log_upload_in_progress(self) -> None:
        """xml: name the multipart uploads under way at the key (best effort, never fails the poke)."""
        try:
            uploads = self.hook.uploads_in_progress(self.cos_path, self.bucket)
        except CosError as exc:
            self.log.debug("ListMultipartUploads of %s failed: %s", self.cos_path, exc)
            return
        if uploads:
            self.log.info(
                "%s: upload in progress (%d multipart upload(s): %s)", self.cos_path, len(uploads), ", ".join(uploads)
            )

    def evaluate(self, stat: dict[str, Any] | None) -> PokeReturnValue:
        """Done when complete; fail on a complete object that does not match the expectations."""
        if stat is None:
            self.log.info("%s does not exist yet", self.cos_path)
            return PokeReturnValue(is_done=False)
        if stat.get("is_folder"):
            raise AirflowFailException(f"{self.cos_path} is a folder, not a file")
        if not stat.get("complete"):
            self.log.info("%s incomplete: %s of %s bytes", self.cos_path, stat.get("filelen"), stat.get("filesize"))
            return PokeReturnValue(is_done=False)
        problems = []
        filesize = stat.get("filesize")
        if self.expected_size is not None and (filesize is None or int(filesize) != int(self.expected_size)):
            problems.append(f"size {stat.get('filesize')} != expected {self.expected_size}")
        if self.expected_sha1 and str(stat.get("sha") or "").lower() != self.expected_sha1.lower():
            problems.append(f"sha1 {stat.get('sha')} != expected {self.expected_sha1}")
        crc = stat.get("crc64")
        if self.expected_crc64 not in (None, "") and str(crc) != str(self.expected_crc64).strip():
            problems.append(f"crc64 {crc} != expected {self.expected_crc64}")
        if problems:
            raise AirflowFailException(f"{self.cos_path} is complete but does not match: " + "; ".join(problems))
        return PokeReturnValue(is_done=True, xcom_value=stat)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            try:
                return super().execute(context)
            except AirflowSensorTimeout as exc:  # Airflow's "Sensor has timed out; run duration of ..."
                raise AirflowSensorTimeout(timed_out_message(self.cos_path, self._last_stat)) from exc
        result = self.poke(context)
        if result.is_done:
            return result.xcom_value
        timeout = float(self.timeout) if self.timeout else None
        self.defer(
            trigger=CosUploadCompleteTrigger(
                cos_path=self.cos_path,
                bucket=self.bucket,
                cos_conn_id=self.cos_conn_id,
                poll_interval=float(self.poke_interval),
                deadline=time.time() + timeout if timeout else None,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=timeout) + DEFERRAL_TIMEOUT_GRACE if timeout else None,
        )

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except AirflowSensorTimeout as exc:
            if not isinstance(exc.__cause__, TaskDeferralTimeout):
                raise
            # Airflow ended the deferral ("Trigger timeout") before the trigger's deadline did: look once
            # more, to name the state as the trigger would have (or succeed if the object is there now).
            try:
                stat = self.hook.stat(self.cos_path, self.bucket)
            except CosError as stat_error:
                message = f"timed out waiting for {self.cos_path}: state unknown ({stat_error})"
            else:
                if stat is not None and stat.get("complete"):
                    return self.evaluate(stat).xcom_value
                message = timed_out_message(self.cos_path, stat)
            raise AirflowSensorTimeout(message) from exc

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        if not event:
            raise AirflowException(f"Trigger for {self.cos_path} ended without an event")
        if event.get("status") == "timeout":
            raise AirflowSensorTimeout(event.get("message"))
        if event.get("status") != "success":
            raise AirflowException(f"Waiting for {self.cos_path} failed: {event.get('message')}")
        result = self.evaluate(event.get("stat"))
        if not result.is_done:
            raise AirflowException(f"Trigger reported {self.cos_path} complete but it is not: {event.get('stat')}")
        return result.xcom_value
