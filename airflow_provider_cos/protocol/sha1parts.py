"""SHA-1 with access to the intermediate chaining state, for v2 ``uploadparts`` (COS_JSON_API.md §4.5).

``datasha`` of a non-final slice is the SHA-1 state H0..H4 after absorbing every byte up to the end of
that slice, each word little-endian, hex-encoded; the final slice's is the whole-file SHA-1. hashlib
does not expose its state, so :class:`Sha1State` calls OpenSSL's ``SHA1_Update`` (the library hashlib
itself links) through ctypes: same machine code, hashlib speed, the GIL released during the call. If
libcrypto cannot be loaded a pure-Python compression function is used (about 1000x slower; correct,
and reported by :data:`FAST_SHA1`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_IV = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0)
_MASK = 0xFFFFFFFF


class _ShaCtx(ctypes.Structure):
    # OpenSSL's SHA_CTX (stable since 1.0): h0..h4, Nl, Nh, data[16], num
    _fields_ = (
        ("h", ctypes.c_uint32 * 5),
        ("Nl", ctypes.c_uint32),
        ("Nh", ctypes.c_uint32),
        ("data", ctypes.c_uint32 * 16),
        ("num", ctypes.c_uint32),
    )


def libcrypto_candidates(platform: str = sys.platform) -> list[str]:
    """Where to find OpenSSL's libcrypto, best first: the very library ``_hashlib`` runs on (as mapped
    into this process, Linux), then the loader's search, then versioned sonames.

    On macOS the unversioned ``libcrypto.dylib`` is never tried: loading the system's stub aborts the
    process instead of raising (python/cpython#84158).
    """
    names: list[str] = []
    try:
        import _hashlib  # noqa: F401  (makes sure hashlib's libcrypto is mapped)

        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and "/libcrypto" in fields[5]:
                    names.append(fields[5].strip())
    except (ImportError, OSError):
        pass
    found = ctypes.util.find_library("crypto")
    if found:
        names.append(found)
    names += ["libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.3.dylib", "libcrypto.1.1.dylib"]
    if platform == "darwin":
        names = [n for n in names if os.path.basename(n) != "libcrypto.dylib"]
    return list(dict.fromkeys(names))


def _load_libcrypto() -> tuple[Any | None, str | None]:
    for name in libcrypto_candidates():
        try:
            lib = ctypes.CDLL(name)
            lib.SHA1_Init.argtypes = [ctypes.c_void_p]
            lib.SHA1_Update.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
            lib.SHA1_Final.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        except (OSError, AttributeError):
            continue
        return lib, name
    return None, None


_LIB, LIBCRYPTO = _load_libcrypto()


def _self_test() -> bool:
    if _LIB is None:
        return False
    ctx = _ShaCtx()
    _LIB.SHA1_Init(ctypes.byref(ctx))
    data = b"abc" * 64
    _LIB.SHA1_Update(ctypes.byref(ctx), data, len(data))
    out = ctypes.create_string_buffer(20)
    _LIB.SHA1_Final(out, ctypes.byref(ctx))
    import hashlib

    return out.raw == hashlib.sha1(data).digest()


#: True when the OpenSSL fast path is in use.
FAST_SHA1 = _self_test()
if not FAST_SHA1:
    logging.getLogger(__name__).warning(
        "OpenSSL's SHA-1 could not be loaded through ctypes; v2 uploadparts use a pure-Python SHA-1 "
        "(correct, but about 1000x slower than hashlib)"
    )


def _rol(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & _MASK


def _compress(h: list[int], block: bytes) -> None:
    w = list(struct.unpack(">16I", block))
    for i in range(16, 80):
        w.append(_rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1))
    a, b, c, d, e = h
    for i in range(80):
        if i < 20:
            f, k = (b & c) | (~b & d), 0x5A827999
        elif i < 40:
            f, k = b ^ c ^ d, 0x6ED9EBA1
        elif i < 60:
            f, k = (b & c) | (b & d) | (c & d), 0x8F1BBCDC
        else:
            f, k = b ^ c ^ d, 0xCA62C1D6
        a, b, c, d, e = (_rol(a, 5) + f + e + k + w[i]) & _MASK, a, _rol(b, 30), c, d
    for i, v in enumerate((a, b, c, d, e)):
        h[i] = (h[i] + v) & _MASK


class Sha1State:
    """Running SHA-1 whose chaining state can be read between updates.

    :meth:`state_hex` is only defined on a 64-byte block boundary (every legal slice size is a multiple
    of 64); it raises ``ValueError`` otherwise. Not thread-safe; one per hash pass.
    """

    def __init__(self, *, force_pure: bool = False) -> None:
        self._pure = force_pure or not FAST_SHA1
        self._length = 0
        if self._pure:
            self._h = list(_IV)
            self._pending = b""
        else:
            self._ctx = _ShaCtx()
            assert _LIB is not None
            _LIB.SHA1_Init(ctypes.byref(self._ctx))

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        n = view.nbytes
        if n == 0:
            return
        self._length += n
        if self._pure:
            buf = self._pending + view.tobytes()
            full = len(buf) - len(buf) % 64
            for off in range(0, full, 64):
                _compress(self._h, buf[off : off + 64])
            self._pending = buf[full:]
            return
        assert _LIB is not None
        if view.readonly:
            _LIB.SHA1_Update(ctypes.byref(self._ctx), ctypes.c_char_p(view.tobytes()), n)
        else:
            arr = (ctypes.c_char * n).from_buffer(view)
            _LIB.SHA1_Update(ctypes.byref(self._ctx), ctypes.addressof(arr), n)
            del arr

    @property
    def length(self) -> int:
        return self._length

    def state_hex(self) -> str:
        """H0..H4, each little-endian, as 40 hex characters (the non-final ``datasha``)."""
        if self._length % 64:
            raise ValueError("SHA-1 state is only defined on a 64-byte boundary")
        words = self._h if self._pure else list(self._ctx.h)
        return struct.pack("<5I", *words).hex()

    def hexdigest(self) -> str:
        """The finalized SHA-1 of everything so far; the running state is left untouched."""
        if self._pure:
            h = list(self._h)
            tail = self._pending + b"\x80"
            tail += b"\x00" * ((56 - len(tail) % 64) % 64) + struct.pack(">Q", self._length * 8)
            for off in range(0, len(tail), 64):
                _compress(h, tail[off : off + 64])
            return struct.pack(">5I", *h).hex()
        assert _LIB is not None
        ctx = _ShaCtx()
        ctypes.pointer(ctx)[0] = self._ctx  # copy the struct
        out = ctypes.create_string_buffer(20)
        _LIB.SHA1_Final(out, ctypes.byref(ctx))
        return out.raw.hex()


@dataclass(frozen=True)
class UploadPart:
    """One ``uploadparts`` entry."""

    offset: int
    datalen: int
    datasha: str

    def as_dict(self) -> dict[str, int | str]:
        return {"offset": self.offset, "datalen": self.datalen, "datasha": self.datasha}


def slice_bounds(filesize: int, slice_size: int) -> Iterator[tuple[int, int]]:
    """``(offset, length)`` of every slice, in order. A 0-byte file has one empty slice."""
    if slice_size <= 0:
        raise ValueError("slice_size must be positive")
    if filesize == 0:
        yield 0, 0
        return
    for offset in range(0, filesize, slice_size):
        yield offset, min(slice_size, filesize - offset)


class UploadPartsHasher:
    """Feed a file's bytes in order (any chunking); get the whole-file SHA-1 and the ``uploadparts``.

    ``slice_size`` must be a multiple of 64 for the non-final states to be defined.
    """

    def __init__(self, filesize: int, slice_size: int, *, force_pure: bool = False) -> None:
        if slice_size % 64:
            raise ValueError("slice_size must be a multiple of 64 bytes for uploadparts")
        self._filesize = filesize
        self._slice_size = slice_size
        self._sha = Sha1State(force_pure=force_pure)
        self._parts: list[UploadPart] = []

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        while view.nbytes:
            pos = self._sha.length
            boundary = (pos // self._slice_size + 1) * self._slice_size
            take = min(view.nbytes, boundary - pos)
            self._sha.update(view[:take])
            view = view[take:]
            end = self._sha.length
            if end % self._slice_size == 0 and end < self._filesize:
                self._parts.append(UploadPart(end - self._slice_size, self._slice_size, self._sha.state_hex()))

    def finish(self) -> tuple[str, list[UploadPart]]:
        """Whole-file SHA-1 and the parts. Raises ``ValueError`` if fewer/more bytes than declared."""
        if self._sha.length != self._filesize:
            raise ValueError(f"hashed {self._sha.length} bytes, expected {self._filesize}")
        digest = self._sha.hexdigest()
        last_offset = self._parts[-1].offset + self._slice_size if self._parts else 0
        parts = [*self._parts, UploadPart(last_offset, self._filesize - last_offset, digest)]
        return digest, parts
