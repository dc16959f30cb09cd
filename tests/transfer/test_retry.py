"""RetryPolicy: immutable, deterministic with an injected clock and random source."""

from __future__ import annotations

import pytest

from airflow_provider_cos.protocol.errors import (
    CosAuthError,
    CosInvalidRequestError,
    CosPathError,
    CosProtocolError,
    CosServerError,
    CosSignatureExpiredError,
    CosThrottledError,
    CosTransportError,
    error_from_envelope,
)
from airflow_provider_cos.transfer import RetryPolicy


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def policy(**kw: object) -> RetryPolicy:
    kw.setdefault("clock", FakeClock())
    kw.setdefault("random", lambda: 0.0)
    return RetryPolicy(**kw)  # type: ignore[arg-type]


def test_increment_returns_new_policy_with_history() -> None:
    p0 = policy(max_attempts=3).begin()
    p1 = p0.increment(CosTransportError("reset"))
    assert p0.attempts == 0 and p1.attempts == 1
    assert p1.history[0].error_type == "CosTransportError"
    assert p0 is not p1


def test_exponential_backoff_capped_without_jitter() -> None:
    p = policy(max_attempts=10, backoff_base=0.5, backoff_cap=3.0, jitter=0.5).begin()
    delays = []
    for _ in range(5):
        p = p.increment(CosServerError("boom", status=503))
        delays.append(p.last_backoff)
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]  # random() == 0 -> no jitter reduction


def test_jitter_reduces_by_fraction() -> None:
    p = policy(backoff_base=1.0, jitter=0.5, random=lambda: 1.0).begin()
    assert p.increment(CosServerError("x")).last_backoff == pytest.approx(0.5)


def test_exhaustion_raises_the_typed_error() -> None:
    p = policy(max_attempts=3).begin()
    p = p.increment(CosTransportError("a"))
    p = p.increment(CosTransportError("b"))
    err = CosTransportError("c")
    with pytest.raises(CosTransportError) as info:
        p.increment(err)
    assert info.value is err


@pytest.mark.parametrize(
    "error",
    [
        CosTransportError("reset"),
        CosServerError("503", status=503),
        CosProtocolError("garbage"),
        error_from_envelope(-71, "ERROR_CMD_OPERATE_TOO_FAST", 400),
        error_from_envelope(-143, "ERROR_CMD_COS_DIR_WRITE_TOO_FAST", 400),
        error_from_envelope(-181, "", 502),
    ],
)
def test_retryable_errors(error: Exception) -> None:
    assert policy().begin().increment(error).attempts == 1


@pytest.mark.parametrize(
    "error",
    [
        CosAuthError("bad key", code=-95),
        CosInvalidRequestError("param", code=-61),
        CosPathError("bad path", code=-180),
        error_from_envelope(-166, "ERROR_CMD_COS_INDEX_ERROR", 400),
    ],
)
def test_never_retried(error: Exception) -> None:
    with pytest.raises(type(error)):
        policy().begin().increment(error)


def test_throttle_codes_map_to_throttled() -> None:
    assert isinstance(error_from_envelope(-71, "", 400), CosThrottledError)


def test_expired_signature_retried_once_without_backoff() -> None:
    p = policy(max_attempts=5).begin()
    p = p.increment(CosSignatureExpiredError("expired", code=-96))
    assert p.last_backoff == 0.0
    with pytest.raises(CosSignatureExpiredError):
        p.increment(CosSignatureExpiredError("expired again", code=-96))


def test_expired_retry_does_not_consume_attempts() -> None:
    p = policy(max_attempts=2).begin()
    p = p.increment(CosSignatureExpiredError("expired", code=-96))
    p = p.increment(CosTransportError("reset"))  # attempt count 1 of 2: allowed
    with pytest.raises(CosTransportError):
        p.increment(CosTransportError("again"))


def test_deadline() -> None:
    clock = FakeClock()
    p = policy(max_attempts=100, backoff_base=1.0, backoff_cap=1.0, deadline=10.0, clock=clock).begin()
    p = p.increment(CosTransportError("a"))
    clock.now += 9.5
    with pytest.raises(CosTransportError):
        p.increment(CosTransportError("b"))  # 9.5 s + 1 s backoff > 10 s


def test_policy_is_immutable_and_shareable() -> None:
    base = policy()
    a = base.begin().increment(CosTransportError("x"))
    assert base.history == () and a.history
    with pytest.raises(AttributeError):
        base.max_attempts = 3  # type: ignore[misc]


def test_never() -> None:
    with pytest.raises(CosTransportError):
        RetryPolicy.never().begin().increment(CosTransportError("x"))


def test_remaining_counts_down_from_begin() -> None:
    clock = FakeClock()
    assert policy(deadline=10.0, clock=clock).remaining() is None  # no sequence begun
    p = policy(deadline=10.0, clock=clock).begin()
    clock.now += 4.0
    assert p.remaining() == 6.0
    clock.now += 7.0
    assert p.remaining() == 0.0
    assert policy(deadline=None, clock=clock).begin().remaining() is None


def test_deadline_error_keeps_its_type_and_names_the_deadline() -> None:
    clock = FakeClock()
    p = policy(max_attempts=100, backoff_base=1.0, backoff_cap=1.0, deadline=10.0, clock=clock).begin()
    p = p.increment(CosTransportError("a"))
    clock.now += 9.5
    with pytest.raises(CosTransportError) as info:
        p.increment(CosTransportError("timed out", operation="stat", path="/x"))
    text = str(info.value)
    assert "retry deadline of 10 s" in text and "2 attempt(s)" in text
    assert text.startswith("timed out") and "op=stat" in text and "path=/x" in text
