"""Slice planning from what the server says."""

from __future__ import annotations

import pytest

from airflow_provider_cos.protocol.errors import CosProtocolError
from airflow_provider_cos.protocol.messages import SlicePart
from airflow_provider_cos.transfer.plan import Slice, SlicePlan, choose_simple

KiB = 1024


def test_slices_cover_the_file_and_mark_the_final() -> None:
    plan = SlicePlan(2500 * KiB, 1024 * KiB)
    assert plan.slices() == [Slice(0, 1024 * KiB), Slice(1024 * KiB, 1024 * KiB), Slice(2048 * KiB, 452 * KiB, True)]
    assert plan.count == 3


def test_exact_multiple_last_slice_is_full_and_final() -> None:
    slices = SlicePlan(2048, 1024).slices()
    assert slices == [Slice(0, 1024), Slice(1024, 1024, True)]


def test_empty_file_has_one_empty_final_slice() -> None:
    assert SlicePlan(0, 1024).slices() == [Slice(0, 0, True)]


def test_from_offset_resumes_where_the_server_says() -> None:
    plan = SlicePlan(5000, 1024)
    assert [s.offset for s in plan.from_offset(2048)] == [2048, 3072, 4096]
    assert plan.from_offset(2048)[-1].final
    assert plan.from_offset(5000) == []
    with pytest.raises(CosProtocolError):
        plan.from_offset(6000)


def test_missing_skips_listed_slices_with_matching_length() -> None:
    plan = SlicePlan(5000, 1024)
    listed = [SlicePart(0, 1024), SlicePart(2048, 1024), SlicePart(4096, 100)]  # last one wrong length
    assert [s.offset for s in plan.missing(listed)] == [1024, 3072, 4096]
    assert plan.stored_bytes(listed) == 2048


def test_missing_trusts_offset_when_length_unknown() -> None:
    plan = SlicePlan(3000, 1024)
    assert [s.offset for s in plan.missing([SlicePart(1024, -1)])] == [0, 2048]


def test_server_slice_size_must_be_positive() -> None:
    with pytest.raises(CosProtocolError):
        SlicePlan(100, 0)


def test_simple_threshold_is_strict() -> None:
    assert choose_simple(20 * 1024 * KiB - 1, 20 * 1024 * KiB)
    assert not choose_simple(20 * 1024 * KiB, 20 * 1024 * KiB)
