from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from airflow_provider_cos.protocol import sha1parts
from airflow_provider_cos.protocol.sha1parts import Sha1State, UploadPartsHasher, slice_bounds

VECTORS = json.loads((Path(__file__).resolve().parent / "vectors.json").read_text())["uploadparts_vectors"]


def _gen(n: int) -> bytes:
    return bytes((7 * i + 3) % 251 for i in range(n))


# The pure-Python fallback is ~1000x slower: two chunkings of it are enough.
@pytest.mark.parametrize(
    ("pure", "chunk"), [(False, 1 << 20), (False, 100_003), (False, 64), (True, 1 << 20), (True, 100_003)]
)
@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: f"{v['filesize']}b")
def test_uploadparts_vectors(vector: dict, pure: bool, chunk: int) -> None:
    data = _gen(vector["filesize"])
    hasher = UploadPartsHasher(vector["filesize"], vector["slice_size"], force_pure=pure)
    for i in range(0, len(data), chunk):
        hasher.update(data[i : i + chunk])
    digest, parts = hasher.finish()
    assert digest == vector["whole_file_sha1"]
    assert [p.as_dict() for p in parts] == vector["uploadparts"]
    # intermediate states are NOT the per-slice SHA-1s
    assert [p.datasha for p in parts[:-1]] != vector["plain_sha1_of_each_slice_for_contrast"][:-1] or len(parts) == 1


def test_fast_path_is_in_use_here() -> None:
    # The machine's Python links OpenSSL; if this fails the hash pass would be ~1000x slower.
    assert sha1parts.FAST_SHA1


def test_iv_state_and_exact_multiple() -> None:
    assert Sha1State().state_hex() == "0123456789abcdeffedcba9876543210f0e1d2c3"
    data = os.urandom(3 * 65536)
    hasher = UploadPartsHasher(len(data), 65536)
    hasher.update(data)
    digest, parts = hasher.finish()
    assert digest == hashlib.sha1(data).hexdigest()
    assert [(p.offset, p.datalen) for p in parts] == [(0, 65536), (65536, 65536), (131072, 65536)]
    assert parts[-1].datasha == digest  # the N-th slice of an exact multiple is the last one


@pytest.mark.parametrize("pure", [False, True])
def test_hexdigest_matches_hashlib_and_keeps_running(pure: bool) -> None:
    data = os.urandom(10_000)
    state = Sha1State(force_pure=pure)
    state.update(data[:5000])
    assert state.hexdigest() == hashlib.sha1(data[:5000]).hexdigest()
    state.update(memoryview(bytearray(data[5000:])))
    assert state.hexdigest() == hashlib.sha1(data).hexdigest()


def test_state_off_block_boundary_is_refused() -> None:
    state = Sha1State()
    state.update(b"abc")
    with pytest.raises(ValueError):
        state.state_hex()


def test_wrong_length_and_bad_slice_size() -> None:
    with pytest.raises(ValueError):
        UploadPartsHasher(100, 1000)
    hasher = UploadPartsHasher(128, 64)
    hasher.update(b"x" * 64)
    with pytest.raises(ValueError, match="expected 128"):
        hasher.finish()


def test_empty_file() -> None:
    digest, parts = UploadPartsHasher(0, 1 << 20).finish()
    assert digest == hashlib.sha1(b"").hexdigest()
    assert [(p.offset, p.datalen) for p in parts] == [(0, 0)]


def test_slice_bounds() -> None:
    assert list(slice_bounds(10, 4)) == [(0, 4), (4, 4), (8, 2)]
    assert list(slice_bounds(8, 4)) == [(0, 4), (4, 4)]
    assert list(slice_bounds(0, 4)) == [(0, 0)]
    with pytest.raises(ValueError):
        list(slice_bounds(10, 0))


def test_libcrypto_is_the_one_hashlib_uses_here() -> None:
    # On Linux the first candidate is the libcrypto mapped for _hashlib; that is the one loaded.
    assert sha1parts.LIBCRYPTO is not None
    assert sha1parts.libcrypto_candidates()[0] == sha1parts.LIBCRYPTO
    if os.path.exists("/proc/self/maps"):
        assert "/libcrypto" in sha1parts.LIBCRYPTO


def test_macos_never_tries_the_unversioned_stub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sha1parts.ctypes.util, "find_library", lambda name: "/usr/lib/libcrypto.dylib")
    darwin = sha1parts.libcrypto_candidates(platform="darwin")
    assert "/usr/lib/libcrypto.dylib" not in darwin and "libcrypto.3.dylib" in darwin
    assert "/usr/lib/libcrypto.dylib" in sha1parts.libcrypto_candidates(platform="linux")
