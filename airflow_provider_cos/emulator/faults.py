"""Fault injection rules and request statistics.

Rules are matched per request in insertion order; the first match fires and counts down its ``times``
(``None`` = forever). A fired rule replaces the normal answer; the request then has no effect on state,
except a pure ``delay`` rule, which only delays the normal answer. ``drop`` rules close the connection
after reading part of the body (``after_bytes`` bytes, default: whatever was read when the op became
known) without answering. All methods are thread-safe.
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class FaultRule:
    """One injected fault.

    ``op`` matches the request's ``op`` (v1 slice requests also match the aliases ``upload_slice_init`` and
    ``upload_slice_data``); ``path`` the decoded COS path, exactly or as a glob. Kinds, by precedence:
    ``drop``, ``garbage`` (200 with non-JSON), ``empty`` (200 with no body), ``status`` (that HTTP status
    with a COS envelope of ``code`` or -181, or plain text if ``plain``), ``code`` (a COS error envelope
    with the table's HTTP status). ``delay`` seconds are waited before any answer.

    XML operations (``op`` = ``PutObject``, ``UploadPart``, ``CompleteMultipartUpload``, ...) answer an
    ``<Error>`` of ``xml_code`` (default ``InternalError`` for 5xx/unset, ``SlowDown`` for 503) with
    ``status`` or the XML table's status; ``status=200`` on ``CompleteMultipartUpload`` puts that error
    inside a 200 after keep-alive whitespace, as COS does when a merge fails late.
    """

    op: str | None = None
    path: str | None = None
    times: int | None = 1
    status: int | None = None
    code: int | None = None
    delay: float = 0.0
    drop: bool = False
    garbage: bool = False
    empty: bool = False
    after_bytes: int | None = None
    plain: bool = False
    xml_code: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultRule:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown FaultRule field(s): {', '.join(sorted(unknown))}")
        rule = cls(**data)
        rule.validate()
        return rule

    def validate(self) -> None:
        if self.times is not None and (not isinstance(self.times, int) or self.times < 1):
            raise ValueError("times must be a positive integer or null")
        if self.status is not None and not (isinstance(self.status, int) and 100 <= self.status <= 599):
            raise ValueError("status must be an HTTP status code")
        if self.code is not None and not isinstance(self.code, int):
            raise ValueError("code must be an integer")
        if self.xml_code is not None and (not isinstance(self.xml_code, str) or not self.xml_code.isalnum()):
            raise ValueError("xml_code must be an XML error code such as 'SlowDown'")
        if not isinstance(self.delay, (int, float)) or self.delay < 0 or self.delay > 600:
            raise ValueError("delay must be within 0..600 seconds")
        if self.after_bytes is not None and (not isinstance(self.after_bytes, int) or self.after_bytes < 0):
            raise ValueError("after_bytes must be a non-negative integer")

    @property
    def answers(self) -> bool:
        """True when the rule replaces the answer (not a pure delay)."""
        return bool(
            self.drop
            or self.garbage
            or self.empty
            or self.status is not None
            or self.code is not None
            or self.xml_code is not None
        )

    def matches(self, ops: Iterable[str], path: str) -> bool:
        if self.op is not None and self.op not in set(ops):
            return False
        return self.path is None or self.path == path or fnmatch.fnmatchcase(path, self.path)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class FaultBook:
    """The list of active rules with their remaining counts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[list[Any]] = []  # [rule, remaining or None]

    def add(self, rule: FaultRule) -> None:
        rule.validate()
        with self._lock:
            self._rules.append([rule, rule.times])

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def active(self) -> list[FaultRule]:
        with self._lock:
            return [entry[0] for entry in self._rules]

    def take(self, ops: Iterable[str], path: str) -> FaultRule | None:
        """Find, count down and return the first matching rule."""
        ops = tuple(ops)
        with self._lock:
            for entry in self._rules:
                rule: FaultRule = entry[0]
                if not rule.matches(ops, path):
                    continue
                if entry[1] is not None:
                    entry[1] -= 1
                    if entry[1] <= 0:
                        self._rules.remove(entry)
                return rule
        return None


@dataclass(frozen=True)
class EmulatorStats:
    """A snapshot of the counters: requests per op, slice payload bytes, completed objects, fired faults,
    and ``internal_errors`` (HTTP 500 answers caused by an emulator bug; always 0 unless there is one)."""

    requests: dict[str, int] = field(default_factory=dict)
    slice_bytes: int = 0
    objects_completed: int = 0
    faults_fired: int = 0
    internal_errors: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class StatsCounter:
    """Thread-safe counters behind :class:`EmulatorStats`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._requests: dict[str, int] = {}
            self._slice_bytes = 0
            self._completed = 0
            self._faults = 0
            self._internal = 0

    def request(self, op: str) -> None:
        with self._lock:
            self._requests[op] = self._requests.get(op, 0) + 1

    def slice_bytes(self, n: int) -> None:
        with self._lock:
            self._slice_bytes += n

    def completed(self) -> None:
        with self._lock:
            self._completed += 1

    def fault(self) -> None:
        with self._lock:
            self._faults += 1

    def internal_error(self) -> None:
        with self._lock:
            self._internal += 1

    def snapshot(self) -> EmulatorStats:
        with self._lock:
            return EmulatorStats(dict(self._requests), self._slice_bytes, self._completed, self._faults, self._internal)
