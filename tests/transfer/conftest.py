"""Fixtures for the transfer engine tests: a running emulator (real socket), clients, test files."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cos.emulator import DEMO, CosEmulator
from airflow_provider_cos.protocol.crc64 import Crc64
from airflow_provider_cos.protocol.messages import CosTarget
from airflow_provider_cos.protocol.signing import Credentials
from airflow_provider_cos.transfer import CosClient, RetryPolicy, TransferConfig
from tests.fixtures_emulator import emulator, emulator_factory  # noqa: F401  (re-exported fixtures)
from tests.support.custom_domain import bound, proxy  # noqa: F401  (custom-domain fixtures)

KiB = 1024
MiB = 1024 * KiB
#: Fast retries for tests: many attempts, tiny backoff.
FAST_RETRY = RetryPolicy(max_attempts=8, backoff_base=0.01, backoff_cap=0.05, deadline=60)


def small_config(**overrides: Any) -> TransferConfig:
    values: dict[str, Any] = {
        "simple_threshold": 1 * MiB,
        "slice_size": 512 * KiB,
        "max_workers": 3,
        "connect_timeout": 2.0,
        "read_timeout": 10.0,
        "retry": FAST_RETRY,
        "hash_chunk_size": 1 * MiB,
    }
    values.update(overrides)
    return TransferConfig(**values)


def write_file(path: Path, size: int, seed: int = 0) -> str:
    """Deterministic pseudo-random content; returns its SHA-1."""
    block = hashlib.sha256(str(seed).encode()).digest() * (64 * KiB // 32)
    rnd = os.urandom(4096)
    with open(path, "wb") as f:
        written = 0
        i = 0
        while written < size:
            chunk = (block[i % 32 :] + block[: i % 32] + rnd)[: min(len(block), size - written)]
            f.write(chunk)
            written += len(chunk)
            i += 1
    return sha1_of(path)


def sha1_of(path: Path | str) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            h.update(chunk)
    return h.hexdigest()


def crc_of(path: Path) -> str:
    """The file's CRC-64/ECMA as an unsigned decimal string (as in ``x-cos-hash-crc64ecma``)."""
    crc = Crc64()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            crc.update(chunk)
    return crc.decimal()


def stored_sha1(emu: CosEmulator, cos_path: str) -> str | None:
    """SHA-1 of the bytes the emulator holds on disk for ``cos_path`` (``None`` if no object)."""
    root = Path(emu.data_dir) / "buckets" / f"{DEMO.appid}-{DEMO.bucket}"
    meta_file = root / "objects" / f"{hashlib.sha256(cos_path.encode()).hexdigest()}.json"
    if not meta_file.exists():
        return None
    meta = json.loads(meta_file.read_text())
    if not meta.get("blob"):
        return None
    return sha1_of(root / "blobs" / meta["blob"])


def check_stored(client: CosClient, emu: CosEmulator, cos_path: str, src: Path) -> None:
    """``cos_path`` holds exactly ``src``'s bytes: on the emulator's disk (the SHA-1 of the stored blob), and
    as the API in use describes it: JSON ``stat`` (complete, the file's size and SHA-1), xml HeadObject (the
    file's size and CRC-64)."""
    size = src.stat().st_size
    assert stored_sha1(emu, cos_path) == sha1_of(src)
    if client.xml:
        head = client.head(cos_path)
        assert head is not None and head.size == size and str(head.crc64) == crc_of(src)
    else:
        info = client.stat(cos_path)
        assert info is not None and info.complete and info.filesize == size and info.sha == sha1_of(src)


@pytest.fixture
def make_client(emulator: CosEmulator) -> Iterator[Callable[..., CosClient]]:  # noqa: F811
    clients: list[CosClient] = []

    def make(
        api_version: str = "v2",
        *,
        url: str | None = None,
        config: TransferConfig | None = None,
        secret_key: str | None = None,
        **kwargs: Any,
    ) -> CosClient:
        client = CosClient(
            target=CosTarget(url or emulator.url, api_version, DEMO.appid, DEMO.bucket),  # type: ignore[arg-type]
            credentials=Credentials(DEMO.secret_id, secret_key or DEMO.secret_key),
            config=config or small_config(),
            **kwargs,
        )
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()


@pytest.fixture(params=["v1", "v2"])
def api_version(request: pytest.FixtureRequest) -> str:
    return str(request.param)
