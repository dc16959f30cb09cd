"""The hash pass: hashlib-identical digest, uploadparts, change detection, cancellation."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from airflow_provider_cos.protocol.errors import CosCancelledError, CosFileChangedError
from airflow_provider_cos.protocol.sha1parts import UploadPartsHasher
from airflow_provider_cos.transfer.hashing import FileIdentity, check_unchanged, hash_file

KiB = 1024


@pytest.mark.parametrize("size", [0, 1, 64 * KiB, 1000 * KiB + 3])
@pytest.mark.parametrize("parts", [None, 256 * KiB])
def test_digest_and_parts_match_reference(tmp_path: Path, size: int, parts: int | None) -> None:
    data = os.urandom(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        digest = hash_file(
            fd, FileIdentity.of_path(str(path)), path=str(path), parts_slice_size=parts, chunk_size=64 * KiB
        )
    finally:
        os.close(fd)
    assert digest.sha1 == hashlib.sha1(data).hexdigest()
    if parts is None:
        assert digest.parts is None
    else:
        ref = UploadPartsHasher(size, parts)
        ref.update(data)
        assert list(digest.parts or ()) == ref.finish()[1]
        assert digest.parts and digest.parts[-1].datasha == digest.sha1


def test_change_detection(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    ident = FileIdentity.of_path(str(path))
    check_unchanged(str(path), None, ident)
    with open(path, "ab") as f:
        f.write(b"y")
    with pytest.raises(CosFileChangedError):
        check_unchanged(str(path), None, ident)


def test_cancel_between_chunks(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 256 * KiB)
    ev = threading.Event()
    ev.set()
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(CosCancelledError):
            hash_file(
                fd,
                FileIdentity.of_path(str(path)),
                path=str(path),
                parts_slice_size=None,
                chunk_size=64 * KiB,
                cancel=ev,
            )
    finally:
        os.close(fd)
