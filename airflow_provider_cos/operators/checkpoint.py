"""Resume state in Airflow 3.3's task state store, so a retry on any worker continues the same upload."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any, Protocol

#: Resume state outlives a retry delay comfortably, but does not pile up forever.
RETENTION = timedelta(days=7)
# How a failed transfer task ends its message: the checkpoint is kept, whichever way the task runs again.
NEXT_TRY_RESUMES = "the next try of this task (a retry or a clear) resumes it"


class _StateStore(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...
    def set(self, key: str, value: Any, *, retention: timedelta | None = None) -> None: ...
    def delete(self, key: str) -> None: ...


class TaskStateCheckpointStore:
    """A :class:`airflow_provider_cos.transfer.CheckpointStore` on ``context["task_state_store"]``.

    The store is scoped to (DAG run, task, map index) and shared by all tries of the task. Engine keys
    are hashed into short, URL-safe store keys. The server stays the judge of what it already has: the
    engine re-inits with the saved session and continues where the server says.
    """

    prefix = "cos-upload-"

    def __init__(self, store: _StateStore, *, retention: timedelta = RETENTION) -> None:
        self._store = store
        self._retention = retention

    def _key(self, key: str) -> str:
        return self.prefix + hashlib.sha1(key.encode("utf-8")).hexdigest()

    def load(self, key: str) -> dict[str, Any] | None:
        value = self._store.get(self._key(key), None)
        return value if isinstance(value, dict) else None

    def save(self, key: str, state: dict[str, Any]) -> None:
        self._store.set(self._key(key), state, retention=self._retention)

    def delete(self, key: str) -> None:
        self._store.delete(self._key(key))
