"""One coordinator per transfer: it owns the stop/cancel state, the first error, the counters and the
progress aggregate, and runs slices with bounded concurrency.

Workers never raise across threads: each one reports ``(slice, error)`` into a queue that only the
coordinating thread reads. The first real error stops new slices (in-flight ones finish or time out,
their later errors are ignored) and is raised by :meth:`TransferCoordinator.run_slices`. A cancel
raises :class:`CosCancelledError` at once, without waiting for in-flight requests.

The executor is injectable: :class:`InlineExecutor` runs each slice synchronously on the calling
thread, which makes slice order and retries deterministic in tests.
"""

from __future__ import annotations

import collections
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from airflow_provider_cos.protocol.errors import CosCancelledError
from airflow_provider_cos.transfer.plan import Slice
from airflow_provider_cos.transfer.progress import ProgressAggregator


class Executor(Protocol):
    def submit(self, fn: Callable[[], None], /) -> Any: ...

    def shutdown(self, wait: bool = True) -> None: ...


ExecutorFactory = Callable[[int], Executor]


class InlineExecutor:
    """Runs every submitted function immediately on the caller's thread."""

    def submit(self, fn: Callable[[], None], /) -> None:
        fn()

    def shutdown(self, wait: bool = True) -> None:
        return None


def thread_executor(max_workers: int) -> Executor:
    return ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="cos-slice")


def inline_executor(max_workers: int) -> Executor:
    return InlineExecutor()


class TransferCoordinator:
    """State of one transfer. ``stop`` is set on cancel or on the first error; workers poll it."""

    POLL_SECONDS = 0.05

    def __init__(self, progress: ProgressAggregator, *, executor_factory: ExecutorFactory = thread_executor) -> None:
        self.progress = progress
        self.stop = threading.Event()
        self._cancelled = threading.Event()
        self._executor_factory = executor_factory
        self._lock = threading.Lock()
        self.bytes_sent = 0
        self.slices_sent = 0
        self.retries = 0
        self.max_in_flight_seen = 0
        self._in_flight = 0
        self._on_idle: list[Callable[[], None]] = []

    # ---- cancellation
    def cancel(self) -> None:
        """Thread-safe; idempotent."""
        self._cancelled.set()
        self.stop.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def check_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise CosCancelledError("upload cancelled")

    # ---- counters (called by workers)
    def record_sent(self, payload: int, *, slices: int = 1) -> None:
        with self._lock:
            self.bytes_sent += payload
            self.slices_sent += slices

    def record_retry(self) -> None:
        with self._lock:
            self.retries += 1

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight_seen = max(self.max_in_flight_seen, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1
            callbacks, self._on_idle = (self._on_idle, []) if self._in_flight == 0 else ([], self._on_idle)
        for callback in callbacks:
            callback()

    def when_idle(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once no worker is inside ``send``: at once if none is, else when the last one
        leaves. After a cancel, workers may still be finishing their slice while ``run_slices`` has
        already returned; what they read from (the file descriptor) must outlive them. A worker that
        starts later sees ``stop`` set and never calls ``send``."""
        with self._lock:
            if self._in_flight:
                self._on_idle.append(callback)
                return
        callback()

    # ---- the bounded loop
    def run_slices(self, slices: Sequence[Slice], send: Callable[[Slice], object], *, max_in_flight: int) -> None:
        """Send every slice, at most ``max_in_flight`` at a time, in the given order of submission.

        Returns when all were acknowledged; raises the first error, or :class:`CosCancelledError`.
        With ``max_in_flight=1`` slices go strictly one after another, in order.
        """
        self.check_cancelled()
        if not slices:
            return
        self.stop.clear()
        done: queue.SimpleQueue[tuple[Slice, BaseException | None]] = queue.SimpleQueue()
        pending = collections.deque(slices)
        in_flight = 0
        first_error: BaseException | None = None
        executor = self._executor_factory(max_in_flight)

        def work(item: Slice) -> None:
            error: BaseException | None = None
            self._enter()
            try:
                if self.stop.is_set():
                    raise CosCancelledError("transfer stopped before this slice started")
                send(item)
            except BaseException as exc:  # reported, never raised across threads
                error = exc
            finally:
                self._leave()
            done.put((item, error))

        try:
            while True:
                if self._cancelled.is_set():
                    raise CosCancelledError("upload cancelled")
                while pending and in_flight < max_in_flight and not self.stop.is_set():
                    item = pending.popleft()
                    in_flight += 1
                    executor.submit(lambda item=item: work(item))  # type: ignore[misc]
                if in_flight == 0:
                    break
                try:
                    _, error = done.get(timeout=self.POLL_SECONDS)
                except queue.Empty:
                    continue
                in_flight -= 1
                # a CosCancelledError after the stop is only the echo of an earlier error or a cancel
                echo = isinstance(error, CosCancelledError) and self.stop.is_set()
                if error is not None and first_error is None and not echo:
                    first_error = error
                    self.stop.set()
        finally:
            executor.shutdown(wait=not self._cancelled.is_set())
        if not self._cancelled.is_set():
            self.stop.clear()  # every worker has returned: the next phase may run
        if first_error is not None:
            raise first_error
        self.check_cancelled()
        if pending:  # stop was set without an error of ours: only a cancel does that
            raise CosCancelledError("upload cancelled")
