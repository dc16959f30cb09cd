"""The retry policy: an immutable value object in the style of ``urllib3.util.Retry``.

``policy.increment(error)`` returns a *new* policy that remembers the failure, or raises the error when
it must not (or may no longer) be retried. Nothing mutates, so one policy can be shared by every worker
thread of every transfer; each request sequence starts from it with :meth:`RetryPolicy.begin`.

What is retried is decided by the protocol's error table (``error.retryable``): connection errors and
timeouts (:class:`CosTransportError`), HTTP 5xx / -181 (:class:`CosServerError`), unreadable answers
(:class:`CosProtocolError`) and throttling (-71, -143). Auth, parameter and path errors never are. An
expired signature (-96) is re-signed and sent again exactly once, without backoff.
"""

from __future__ import annotations

import random as _random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from airflow_provider_cos.protocol.errors import CosError, CosSignatureExpiredError

#: Tries of one request, the first included (the connection's ``max_retries`` is this minus one).
DEFAULT_MAX_ATTEMPTS = 6
#: Seconds one request may take, all its tries and backoffs included (the connection's ``retry_deadline``).
DEFAULT_RETRY_DEADLINE = 600.0


@dataclass(frozen=True)
class RetryAttempt:
    """One failure in a policy's history."""

    error_type: str
    code: int | None
    status: int | None
    message: str
    at: float
    backoff: float


def _add_note(error: BaseException, note: str) -> None:
    add = getattr(error, "add_note", None)
    if add is not None:
        add(note)


def _give_up_on_deadline(error: BaseException, note: str) -> None:
    """Say why in the error's own message (a note alone is lost by ``str()`` and most log lines); the
    error keeps its type, so callers classify it as before."""
    _add_note(error, note)
    if isinstance(error, CosError):
        error.message = f"{error.message}; {note}"
        error.args = (CosError._render(error),)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a request is sent again.

    ``max_attempts``: total tries of one request, the first included (1 = never retry).
    Backoff before retry *n* (n = 1, 2, ...) is ``min(backoff_cap, backoff_base * 2 ** (n - 1))``,
    then jittered down by up to ``jitter`` (a fraction: 0.5 means a uniform draw in [50 %, 100 %]).
    ``deadline``: seconds from :meth:`begin` that one request may take, all its tries and backoffs
    included (``None`` = no limit): no try starts after it, and the requester gives each try at most
    :meth:`remaining` seconds, so a request at a host that never answers fails after about ``deadline``
    seconds with its last (typed) error, whose message names the deadline.
    ``clock``/``sleep``/``random`` are injectable for deterministic tests; ``sleep=None`` lets the
    engine wait on its cancellation event instead (so ``cancel()`` interrupts a backoff).
    """

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff_base: float = 0.5
    backoff_cap: float = 20.0
    jitter: float = 0.5
    deadline: float | None = DEFAULT_RETRY_DEADLINE
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)
    sleep: Callable[[float], None] | None = field(default=None, compare=False, repr=False)
    random: Callable[[], float] = field(default=_random.random, compare=False, repr=False)
    history: tuple[RetryAttempt, ...] = ()
    started_at: float | None = None

    def __post_init__(self) -> None:
        from airflow_provider_cos.protocol.errors import CosConfigError

        if self.max_attempts < 1:
            raise CosConfigError("RetryPolicy.max_attempts must be >= 1")
        if self.backoff_base < 0 or self.backoff_cap < 0:
            raise CosConfigError("RetryPolicy backoff values must be >= 0")
        if not 0.0 <= self.jitter <= 1.0:
            raise CosConfigError("RetryPolicy.jitter must be within 0..1")
        if self.deadline is not None and self.deadline <= 0:
            raise CosConfigError("RetryPolicy.deadline must be positive or None")

    @classmethod
    def never(cls) -> RetryPolicy:
        """A policy that gives up on the first failure."""
        return cls(max_attempts=1)

    @property
    def attempts(self) -> int:
        """Failures recorded so far (the next try is number ``attempts + 1``)."""
        return len(self.history)

    def begin(self) -> RetryPolicy:
        """A fresh copy for one request sequence: empty history, deadline counted from now."""
        return replace(self, history=(), started_at=self.clock())

    def remaining(self) -> float | None:
        """Seconds left before the deadline of the sequence begun by :meth:`begin` (never negative);
        ``None`` without a deadline or before :meth:`begin`."""
        if self.deadline is None or self.started_at is None:
            return None
        return max(0.0, self.deadline - (self.clock() - self.started_at))

    def is_retryable(self, error: BaseException) -> bool:
        return isinstance(error, CosError) and error.retryable

    def _expired_retries(self) -> int:
        return sum(1 for h in self.history if h.code == -96)

    def next_backoff(self) -> float:
        """Seconds to wait before the retry that follows the last recorded failure."""
        if not self.history:
            return 0.0
        if self.history[-1].code == -96:
            return 0.0
        n = sum(1 for h in self.history if h.code != -96)
        raw = min(self.backoff_cap, self.backoff_base * (2.0 ** (n - 1)))
        return raw * (1.0 - self.jitter * self.random())

    def increment(self, error: BaseException) -> RetryPolicy:
        """Record ``error`` and return the policy for the next try, or re-raise ``error``.

        Raises ``error`` itself (typed, with a note saying why the engine gave up) when it is not
        retryable, when ``max_attempts`` is reached, when the deadline has passed, or on a second -96.
        """
        now = self.clock()
        if not self.is_retryable(error):
            raise error
        code = getattr(error, "code", None)
        if isinstance(error, CosSignatureExpiredError) or code == -96:
            if self._expired_retries() >= 1:
                _add_note(error, "signature expired again after re-signing: check the clock")
                raise error
            attempt = RetryAttempt(type(error).__name__, -96, getattr(error, "status", None), str(error), now, 0.0)
            return replace(self, history=(*self.history, attempt))
        counted = sum(1 for h in self.history if h.code != -96) + 1
        if counted >= self.max_attempts:
            _add_note(error, f"gave up after {counted} attempt(s)")
            raise error
        started = self.started_at if self.started_at is not None else now
        provisional = replace(
            self,
            started_at=started,
            history=(
                *self.history,
                RetryAttempt(type(error).__name__, code, getattr(error, "status", None), str(error), now, 0.0),
            ),
        )
        delay = provisional.next_backoff()
        if self.deadline is not None and now + delay - started > self.deadline:
            _give_up_on_deadline(
                error,
                f"gave up after {counted} attempt(s) in {now - started:.1f} s: "
                f"retry deadline of {self.deadline:g} s reached",
            )
            raise error
        last = provisional.history[-1]
        return replace(provisional, history=(*provisional.history[:-1], replace(last, backoff=delay)))

    @property
    def last_backoff(self) -> float:
        """The backoff chosen for the latest failure (0 when none)."""
        return self.history[-1].backoff if self.history else 0.0
