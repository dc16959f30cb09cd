"""CosUploadCompleteTrigger: poll ``stat`` in the triggerer until the object is complete."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_cos.hooks.connection import DEFAULT_CONN_ID
from airflow_provider_cos.protocol.errors import CosError


def _event(payload: dict[str, Any]) -> TriggerEvent:
    return TriggerEvent(payload)  # type: ignore[no-untyped-call]


def timed_out_message(cos_path: str, stat: dict[str, Any] | None) -> str:
    """The one timeout message of the sensor, in poke and deferrable mode alike (``stat`` is the last
    one seen: ``None`` for a missing object)."""
    state = "missing" if stat is None else f"incomplete ({stat.get('filelen')}/{stat.get('filesize')})"
    return f"timed out waiting for {cos_path}: still {state}"


class CosUploadCompleteTrigger(BaseTrigger):
    """Fire when ``cos_path`` exists and ``filelen == filesize``.

    Events: ``{"status": "success", "stat": {...}}``, ``{"status": "timeout", "message": "..."}`` when the
    deadline passed, or ``{"status": "error", "message": "..."}``.
    The blocking HTTP calls run in a worker thread (``asyncio.to_thread``), never on the event loop.
    Retryable failures (timeouts, 5xx) keep the trigger polling; other COS errors end it with an error.

    :param deadline: Unix time after which the trigger gives up with an error event (None: no limit;
        the task's deferral timeout still applies).
    """

    def __init__(
        self,
        cos_path: str,
        bucket: str | None = None,
        cos_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = 5.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.cos_path = cos_path
        self.bucket = bucket
        self.cos_conn_id = cos_conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "cos_path": self.cos_path,
                "bucket": self.bucket,
                "cos_conn_id": self.cos_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
            },
        )

    def _log_uploads(self, hook: Any) -> None:
        """xml: log the multipart uploads under way at the key (best effort)."""
        try:
            uploads = hook.uploads_in_progress(self.cos_path, self.bucket)
        except CosError:
            return
        if uploads:
            self.log.info("%s: upload in progress (%d multipart upload(s))", self.cos_path, len(uploads))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_cos.hooks.cos import CosHook

        hook = CosHook(self.cos_conn_id)
        try:
            while True:
                try:
                    stat = await asyncio.to_thread(hook.stat, self.cos_path, self.bucket)
                except CosError as exc:
                    if not exc.retryable:
                        yield _event({"status": "error", "message": f"stat of {self.cos_path} failed: {exc}"})
                        return
                    self.log.warning("stat of %s failed, polling again: %s", self.cos_path, exc)
                    stat = None
                except Exception as exc:
                    yield _event({"status": "error", "message": f"{type(exc).__name__}: {exc}"})
                    return
                if stat is not None and stat.get("complete"):
                    yield _event({"status": "success", "stat": stat})
                    return
                if stat is not None:
                    self.log.info("%s: %s of %s bytes stored", self.cos_path, stat.get("filelen"), stat.get("filesize"))
                else:
                    await asyncio.to_thread(self._log_uploads, hook)
                if self.deadline is not None and time.time() >= self.deadline:
                    yield _event({"status": "timeout", "message": timed_out_message(self.cos_path, stat)})
                    return
                await asyncio.sleep(self.poll_interval)
        finally:
            await asyncio.to_thread(hook.close)
