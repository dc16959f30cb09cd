"""Reusable per-thread slice buffers: a slice is read straight into its place in the request body.

A :class:`SliceBuffer` holds one slice at a fixed offset (``HEADROOM``) with room before it for the
multipart prefix and after it for the suffix. Sending a slice then costs one kernel copy (``preadv``
into the buffer) and no allocation: the multipart framing is written around the data in place
(:meth:`~airflow_provider_cos.protocol.multipart.EncodedForm.frame_into`) and the transport streams a
memoryview of the buffer. Each attempt re-frames (a retry has a fresh signature and boundary); the data
is read once.

One buffer per sending thread (see :class:`ThreadBuffers`); a buffer is free again as soon as the
transport returns, because the whole body is sent before the answer is read.
"""

from __future__ import annotations

import os
import threading

from airflow_provider_cos.protocol.errors import CosFileChangedError, CosLocalFileError
from airflow_provider_cos.protocol.multipart import EncodedForm
from airflow_provider_cos.transfer.config import SLICE_FRAMING

#: Room before the data for the multipart prefix (a slice request's prefix is ~0.3-0.6 KiB) and after
#: it for the suffix (~60 bytes). A form that does not fit falls back to a joined copy.
#: ``HEADROOM + TAILROOM`` = ``SLICE_FRAMING``, the figure the documented memory bound uses.
HEADROOM = 4 * 1024
TAILROOM = SLICE_FRAMING - HEADROOM


def preadv_exact(fd: int, view: memoryview, offset: int, *, path: str) -> None:
    """Fill ``view`` with the file's bytes at ``offset``; a short read means the file shrank."""
    want = view.nbytes
    got = 0
    while got < want:
        try:
            if _HAVE_PREADV:
                n = os.preadv(fd, [view[got:]], offset + got)
            else:  # pragma: no cover - platforms without preadv(2)
                chunk = os.pread(fd, want - got, offset + got)
                n = len(chunk)
                view[got : got + n] = chunk
        except OSError as e:
            raise CosLocalFileError(f"cannot read the local file: {e.strerror or e}", path=path) from e
        if n <= 0:
            raise CosFileChangedError(f"local file shrank: short read at offset {offset + got}", path=path)
        got += n


_HAVE_PREADV = hasattr(os, "preadv")


class SliceBuffer:
    """One slice's bytes in a reusable buffer with room for the framing around them."""

    __slots__ = ("_buf", "_len")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._len = 0

    @property
    def capacity(self) -> int:
        """Bytes allocated (``slice length + FRAMING`` of the largest slice loaded so far)."""
        return len(self._buf)

    @property
    def nbytes(self) -> int:
        """Length of the slice currently loaded."""
        return self._len

    @property
    def data(self) -> memoryview:
        return memoryview(self._buf)[HEADROOM : HEADROOM + self._len]

    def load(self, fd: int, length: int, offset: int, *, path: str) -> None:
        """Read ``length`` bytes at ``offset`` of ``fd`` into the buffer (grown if needed)."""
        need = HEADROOM + length + TAILROOM
        if len(self._buf) < need:
            # a new object rather than a resize: views handed out earlier may still exist
            self._buf = bytearray(need)
        self._len = 0
        preadv_exact(fd, memoryview(self._buf)[HEADROOM : HEADROOM + length], offset, path=path)
        self._len = length

    def framed(self, form: EncodedForm) -> memoryview | bytes:
        """The whole request body ``prefix + data + suffix``: a view of the buffer when the framing fits
        in the reserved room (always, for slice requests), else a joined copy."""
        if len(form.prefix) <= HEADROOM and len(form.suffix) <= TAILROOM:
            return form.frame_into(self._buf, HEADROOM, self._len)
        return form.body(self.data)


class ThreadBuffers:
    """One :class:`SliceBuffer` per thread, dropped with the thread (or with this object)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def get(self) -> SliceBuffer:
        buf: SliceBuffer | None = getattr(self._local, "buffer", None)
        if buf is None:
            buf = SliceBuffer()
            self._local.buffer = buf
        return buf

    def release(self) -> None:
        """Drop the calling thread's buffer (a thread that outlives its sending phase)."""
        self._local.__dict__.pop("buffer", None)
