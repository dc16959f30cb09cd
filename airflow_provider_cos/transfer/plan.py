"""Slice planning: a file as ``(offset, length)`` descriptors, built from what the server says.

A :class:`Slice` costs a few bytes whatever its length: the worker that sends it reads the bytes with
``os.pread`` just before sending. Plans are pure functions of (file size, the server's slice size,
the server's offset or list of stored slices), so they are unit-tested without a socket.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from airflow_provider_cos.protocol.errors import CosProtocolError
from airflow_provider_cos.protocol.messages import SlicePart


@dataclass(frozen=True, order=True)
class Slice:
    """One slice: ``length`` bytes of the file from ``offset``. ``final`` = it ends the file."""

    offset: int
    length: int
    final: bool = False

    @property
    def end(self) -> int:
        return self.offset + self.length


def choose_simple(filesize: int, simple_threshold: int) -> bool:
    """True when the file goes in one ``op=upload`` (strictly below the threshold)."""
    return filesize < simple_threshold


def check_server_slice_size(slice_size: int) -> int:
    """The server's slice size must be positive; anything else is an answer we cannot follow."""
    if slice_size <= 0:
        raise CosProtocolError(f"server answered an unusable slice_size {slice_size}")
    return slice_size


@dataclass(frozen=True)
class SlicePlan:
    """Every slice of a file of ``filesize`` bytes cut at multiples of ``slice_size``."""

    filesize: int
    slice_size: int

    def __post_init__(self) -> None:
        check_server_slice_size(self.slice_size)
        if self.filesize < 0:
            raise ValueError("filesize must be >= 0")

    @property
    def count(self) -> int:
        return max(1, -(-self.filesize // self.slice_size))

    def slices(self) -> list[Slice]:
        if self.filesize == 0:
            return [Slice(0, 0, True)]
        return [
            Slice(off, min(self.slice_size, self.filesize - off), off + self.slice_size >= self.filesize)
            for off in range(0, self.filesize, self.slice_size)
        ]

    def from_offset(self, offset: int) -> list[Slice]:
        """v1 resume: everything from the server's ``offset`` on, cut at ``slice_size`` steps from it."""
        if offset < 0 or offset > self.filesize:
            raise CosProtocolError(f"server offset {offset} outside the file (size {self.filesize})")
        if offset == self.filesize:
            return []
        return [
            Slice(off, min(self.slice_size, self.filesize - off), off + self.slice_size >= self.filesize)
            for off in range(offset, self.filesize, self.slice_size)
        ]

    def missing(self, received: Iterable[SlicePart]) -> list[Slice]:
        """v2 resume: the slices the server's ``listparts`` does not report as stored (exact match)."""
        have = {(p.offset, p.datalen) for p in received}
        have_offsets = {p.offset for p in received if p.datalen < 0}  # length unknown: trust the offset
        return [s for s in self.slices() if (s.offset, s.length) not in have and s.offset not in have_offsets]

    def stored_bytes(self, received: Iterable[SlicePart]) -> int:
        todo = {s.offset for s in self.missing(received)}
        return sum(s.length for s in self.slices() if s.offset not in todo)
