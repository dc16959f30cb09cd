"""Progress aggregation (thread-safe, rewinding) and LoggingProgress."""

from __future__ import annotations

import itertools
import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_provider_cos.emulator import CosEmulator, FaultRule
from airflow_provider_cos.protocol.errors import CosCancelledError
from airflow_provider_cos.transfer import CosClient, LoggingProgress, ProgressEvent
from airflow_provider_cos.transfer.progress import ProgressAggregator
from tests.transfer.conftest import MiB, small_config, write_file


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


def test_found_bytes_count_in_the_percentage_but_not_in_rate_and_eta(caplog: pytest.LogCaptureFixture) -> None:
    """A resume finds 90 MiB on the server, then sends 1 MiB in 10 s: 91 %, 0.1 MB/s, ETA ~90 s."""
    clock = Clock()
    logger = logging.getLogger("test.progress.resume")
    agg = ProgressAggregator(100 * MiB, LoggingProgress(logger, min_interval=0.0, clock=clock), threshold=1)
    with caplog.at_level(logging.INFO, logger="test.progress.resume"):
        agg.position(90 * MiB)  # what the server already holds
        clock.t += 10
        agg.add(MiB)
    last = caplog.records[-1].getMessage()
    assert "91.0%" in last and "0.1 MB/s" in last and "ETA 1m30s" in last, last


def test_position_below_what_was_counted_rewinds_this_transfers_bytes_first() -> None:
    events: list[ProgressEvent] = []
    agg = ProgressAggregator(10 * MiB, events.append, threshold=1)
    agg.position(4 * MiB)
    agg.add(2 * MiB)
    agg.position(MiB)  # the server lost the session: it holds less than this transfer counted
    assert [(e.bytes_done, e.bytes_found) for e in events] == [(4 * MiB, 4 * MiB), (6 * MiB, 4 * MiB), (MiB, 0)]
    agg.add(MiB)
    assert (events[-1].bytes_done, events[-1].bytes_found) == (2 * MiB, 0)


def test_after_a_real_resume_rate_counts_only_this_try(
    make_client: Callable[..., CosClient], emulator: CosEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Try 1 is cancelled after 3 MiB of 4 MiB; try 2 (v2: -4019 → list) sends the rest. With one clock
    tick (1 s) per progress event, no logged rate may exceed what try 2 sent per second."""
    src = tmp_path / "f.bin"
    write_file(src, 4 * MiB + 11)
    emulator.add_fault(FaultRule(op="upload_slice_data", delay=0.02, times=None))
    first = make_client("v2", config=small_config(max_workers=1))

    def cancel_at_3_mib(event: ProgressEvent) -> None:
        if event.bytes_done >= 3 * MiB:
            threading.Thread(target=first.cancel).start()

    with pytest.raises(CosCancelledError):
        first.upload_file(str(src), "/p.bin", progress=cancel_at_3_mib)
    stored_before = emulator.stats.slice_bytes
    assert stored_before >= 3 * MiB
    clock = TickingClock()
    logger = logging.getLogger("test.progress.real")
    with caplog.at_level(logging.INFO, logger="test.progress.real"):
        result = make_client("v2").upload_file(
            str(src), "/p.bin", progress=LoggingProgress(logger, min_interval=0.0, clock=clock)
        )
    assert result.resumed
    sent_now = emulator.stats.slice_bytes - stored_before
    assert 0 < sent_now <= 2 * MiB
    rates = [float(m.group(1)) for r in caplog.records if (m := re.search(r"([0-9.]+) MB/s", r.getMessage()))]
    assert len(rates) >= 2
    assert max(rates) <= sent_now / 1e6 + 0.05, (rates, sent_now)  # elapsed >= 1 s at every log after the first


class TickingClock:
    """Each reading is one second later than the previous one."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t
