"""Progress aggregation (thread-safe, rewinding) and LoggingProgress."""

from __future__ import annotations

import itertools
import logging
import threading

import pytest

from airflow_provider_cos.transfer import LoggingProgress, ProgressEvent
from airflow_provider_cos.transfer.progress import ProgressAggregator


def test_aggregates_small_deltas_and_flushes_at_total() -> None:
    events: list[ProgressEvent] = []
    agg = ProgressAggregator(1000, events.append, threshold=300)
    for _ in range(10):
        agg.add(100)
    assert [e.bytes_done for e in events] == [300, 600, 900, 1000]
    assert sum(e.bytes_delta for e in events) == 1000
    assert all(e.total == 1000 for e in events)


def test_rewind_is_emitted_immediately_as_negative_delta() -> None:
    events: list[ProgressEvent] = []
    agg = ProgressAggregator(1000, events.append, threshold=1)
    agg.add(400)
    agg.add(-400)
    agg.add(400)
    assert [e.bytes_delta for e in events] == [400, -400, 400]
    assert events[-1].bytes_done == 400


def test_clamped_to_range() -> None:
    events: list[ProgressEvent] = []
    agg = ProgressAggregator(100, events.append, threshold=1)
    agg.add(150)
    agg.add(-500)
    assert [e.bytes_done for e in events] == [100, 0]


def test_thread_safe_sum() -> None:
    events: list[ProgressEvent] = []
    agg = ProgressAggregator(8 * 1000 * 64, events.append, threshold=4096)

    def work() -> None:
        for _ in range(1000):
            agg.add(64)
            agg.add(-32)
            agg.add(32)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    agg.flush()
    assert agg.bytes_done == 8 * 1000 * 64
    assert sum(e.bytes_delta for e in events) == 8 * 1000 * 64
    done = [e.bytes_done for e in events]
    # events are emitted in order: each one's bytes_done follows from the previous one's
    for prev, cur in itertools.pairwise(events):
        assert cur.bytes_done == prev.bytes_done + cur.bytes_delta
    assert done[-1] == 8 * 1000 * 64


def test_failing_callback_never_breaks_the_transfer(caplog: pytest.LogCaptureFixture) -> None:
    calls = []

    def bad(event: ProgressEvent) -> None:
        calls.append(event)
        raise RuntimeError("boom")

    agg = ProgressAggregator(10, bad, threshold=1)
    agg.add(5)
    agg.add(5)
    assert len(calls) == 1


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_logging_progress_rate_limits_and_logs_the_end(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    logger = logging.getLogger("test.progress")
    lp = LoggingProgress(logger, min_interval=5.0, clock=clock)
    total = 100 * 1024 * 1024
    with caplog.at_level(logging.INFO, logger="test.progress"):
        done = 0
        for _ in range(100):
            clock.t += 0.5
            done += 1024 * 1024
            lp(ProgressEvent(1024 * 1024, done, total))
    messages = [r.getMessage() for r in caplog.records]
    # 50 s of transfer, one log per 5 s at most, plus the final one
    assert 9 <= len(messages) <= 11
    assert "100.0%" in messages[-1] and "done" in messages[-1]
    assert "MB/s" in messages[0] and "ETA" in messages[0]


def test_logging_progress_rate_and_eta_text() -> None:
    lp = LoggingProgress(logging.getLogger("x"), clock=Clock())
    text = lp.render(ProgressEvent(0, 50 * 1024 * 1024, 100 * 1024 * 1024), elapsed=10.0)
    assert "50.0%" in text and "5.2 MB/s" in text and "ETA 10s" in text
