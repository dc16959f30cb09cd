"""Progress reporting: a tiny subscriber interface, a thread-safe aggregator, and a logger for task logs.

Workers report raw byte deltas as the body leaves (and a negative delta when an attempt fails and its
bytes must be sent again). :class:`ProgressAggregator` serialises them, coalesces small positive
deltas (``threshold`` bytes) and calls the user's :data:`ProgressCallback` with a
:class:`ProgressEvent`. A callback that raises is logged once and then ignored: progress never breaks
a transfer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProgressEvent:
    """``bytes_delta`` since the previous event (negative when a retry rewinds), running ``bytes_done``
    of ``total`` payload bytes. ``bytes_found`` of ``bytes_done`` were already on the server when this
    transfer joined the session (a resume): they count in the percentage, not in a rate."""

    bytes_delta: int
    bytes_done: int
    total: int
    bytes_found: int = 0


ProgressCallback = Callable[[ProgressEvent], None]


class ProgressAggregator:
    """Thread-safe sum of deltas, emitted in order. ``bytes_done`` is clamped to ``0..total``."""

    def __init__(self, total: int, callback: ProgressCallback | None, *, threshold: int = 256 * 1024) -> None:
        self.total = total
        self._callback = callback
        self._threshold = threshold
        self._lock = threading.Lock()
        self._done = 0
        self._found = 0
        self._pending = 0
        self._failed = False

    @property
    def bytes_done(self) -> int:
        with self._lock:
            return self._done + self._pending

    def add(self, delta: int) -> None:
        if delta == 0:
            return
        with self._lock:
            self._pending += delta
            if self._pending > 0 and self._pending < self._threshold and self._done + self._pending < self.total:
                return
            self._flush_locked()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def position(self, stored: int) -> None:
        """The server holds ``stored`` bytes (its offset, or its list of slices): make ``bytes_done`` say
        so. What it holds beyond the bytes this transfer counted was found (an earlier try sent it), and
        is reported as ``bytes_found``; bytes counted but no longer held are rewound."""
        with self._lock:
            self._flush_locked()
            moved = self._done - self._found  # counted by this transfer's own deltas
            self._found = max(0, stored - moved)
            self._pending = stored - self._done
            self._flush_locked(always=True)

    def _flush_locked(self, *, always: bool = False) -> None:
        if self._pending == 0 and not always:
            return
        new_done = max(0, min(self.total, self._done + self._pending))
        delta = new_done - self._done
        self._pending = 0
        if delta == 0 and not always:
            return
        self._done = new_done
        self._found = min(self._found, new_done)
        if self._callback is None or self._failed:
            return
        try:
            self._callback(ProgressEvent(delta, new_done, self.total, self._found))
        except Exception:
            self._failed = True
            _log.warning("progress callback failed; further progress events are dropped", exc_info=True)


class LoggingProgress:
    """A :data:`ProgressCallback` for Airflow task logs: percent, MB/s and ETA.

    Logs at most once every ``min_interval`` seconds, and always once when the transfer reaches 100 %.
    The percentage counts every byte the server holds; rate and ETA count only the bytes this transfer
    moved since its first event (``bytes_found``, sent by an earlier try, are left out). Thread-safe.
    ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        logger: logging.Logger,
        min_interval: float = 5.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        level: int = logging.INFO,
    ) -> None:
        self._logger = logger
        self._min_interval = min_interval
        self._clock = clock
        self._level = level
        self._lock = threading.Lock()
        self._start: float | None = None
        self._start_bytes = 0
        self._last_log: float | None = None
        self._finished = False

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            now = self._clock()
            if self._start is None:
                self._start = now
                self._start_bytes = max(0, event.bytes_done - event.bytes_found - max(event.bytes_delta, 0))
                self._last_log = now
            done = event.total > 0 and event.bytes_done >= event.total
            if done and self._finished:
                return
            assert self._last_log is not None
            if not done and now - self._last_log < self._min_interval:
                return
            self._last_log = now
            self._finished = done
            self._logger.log(self._level, "%s", self.render(event, now - self._start))

    def render(self, event: ProgressEvent, elapsed: float) -> str:
        total_mib = event.total / (1024 * 1024)
        done_mib = event.bytes_done / (1024 * 1024)
        pct = 100.0 if event.total == 0 else 100.0 * event.bytes_done / event.total
        moved = max(0, event.bytes_done - event.bytes_found - self._start_bytes)
        rate = moved / elapsed if elapsed > 0 else 0.0
        if event.bytes_done >= event.total:
            eta = "done"
        elif rate > 0:
            eta = f"ETA {_fmt_seconds((event.total - event.bytes_done) / rate)}"
        else:
            eta = "ETA unknown"
        return f"Uploaded {pct:5.1f}% ({done_mib:.1f} of {total_mib:.1f} MiB), {rate / 1e6:.1f} MB/s, {eta}"


def _fmt_seconds(seconds: float) -> str:
    s = int(seconds + 0.5)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"
