"""A new process resumes what a SIGKILLed one started; memory stays within the documented bound."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cos.emulator import CosEmulator, FaultRule
from airflow_provider_cos.transfer import CosClient, LocalCheckpointStore, TransferConfig
from tests.transfer.conftest import KiB, MiB, stored_sha1, write_file

ROOT = Path(__file__).resolve().parents[2]
SLICE = 512 * KiB
WORKERS = 2
SLICE_OP = {"v1": "upload_slice", "v2": "upload_slice_data"}


def uploader(url: str, api: str, path: Path, cos_path: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tests.support.uploader",
        "--url",
        url,
        "--api",
        api,
        "--file",
        str(path),
        "--cos-path",
        cos_path,
        "--slice-size",
        str(SLICE),
        "--max-workers",
        str(WORKERS),
        *extra,
    ]


def kill_midway(emulator: CosEmulator, cmd: list[str], data_op: str, *, after: int = 3 * MiB) -> None:
    """Run the uploader ``cmd`` with each ``data_op`` request slowed (0.1 s), SIGKILL it once ``after``
    payload bytes reached the emulator, then clear the fault."""
    emulator.add_fault(FaultRule(op=data_op, delay=0.1, times=None))  # slow enough to kill
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while emulator.stats.slice_bytes < after:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    emulator.clear_faults()


def run_json(cmd: list[str]) -> dict[str, object]:
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# v1 cannot list sessions, so there a new process resumes only through the checkpoint's session.
@pytest.mark.parametrize(("api_version", "with_checkpoint"), [("v1", True), ("v2", True), ("v2", False)])
def test_sigkill_then_new_process_resumes(
    emulator: CosEmulator, tmp_path: Path, api_version: str, with_checkpoint: bool
) -> None:
    size = 8 * MiB + 4321
    src = tmp_path / "src.bin"
    sha1 = write_file(src, size)
    ckpt = tmp_path / "ckpt"
    extra = ["--checkpoint-dir", str(ckpt)] if with_checkpoint else []
    kill_midway(emulator, uploader(emulator.url, api_version, src, "/resume.bin", *extra), SLICE_OP[api_version])
    if with_checkpoint:
        assert list(ckpt.glob("*.json")), "the killed process left a checkpoint"
    result = run_json(uploader(emulator.url, api_version, src, "/resume.bin", *extra))
    assert result["sha1"] == sha1 and result["resumed"] is True
    assert float(result["hash_seconds"]) > 0  # type: ignore[arg-type]  # a resume always hashes the file again
    assert stored_sha1(emulator, "/resume.bin") == sha1
    resent = emulator.stats.slice_bytes - size
    assert resent <= (WORKERS + 1) * SLICE, f"re-sent {resent} bytes"
    if with_checkpoint:
        assert list(ckpt.glob("*.json")) == []  # removed after success


def test_stale_checkpoint_is_discarded(
    make_client: Callable[..., CosClient], emulator: CosEmulator, tmp_path: Path, api_version: str
) -> None:
    src = tmp_path / "src.bin"
    write_file(src, 2 * MiB)
    store = LocalCheckpointStore(tmp_path / "ckpt")
    client = make_client(api_version)
    from airflow_provider_cos.transfer.checkpoint import UploadCheckpoint, checkpoint_key

    key = checkpoint_key(client.target.endpoint, client.target.appid, client.target.bucket, "/f.bin", str(src))
    store.save(
        key,
        UploadCheckpoint(
            local_path=str(src),
            size=2 * MiB,
            mtime_ns=1,
            sha1="0" * 40,
            api_version=api_version,
            bucket=client.target.bucket,
            cos_path="/f.bin",
            session="bogus",
            slice_size=SLICE,
        ).to_dict(),
    )
    sha1 = write_file(src, 2 * MiB, seed=3)
    result = client.upload_file(str(src), "/f.bin", checkpoint_store=store)
    assert result.sha1 == sha1 and not result.resumed and result.hash_seconds > 0
    assert stored_sha1(emulator, "/f.bin") == sha1


def test_memory_stays_within_the_documented_bound(emulator: CosEmulator, tmp_path: Path, api_version: str) -> None:
    """Peak Python allocations of a 24 MiB upload in a separate process, against the formula."""
    size = 24 * MiB
    src = tmp_path / "src.bin"
    write_file(src, size)
    result = run_json(uploader(emulator.url, api_version, src, "/mem.bin", "--tracemalloc"))
    config = TransferConfig(slice_size=SLICE, max_workers=WORKERS, hash_chunk_size=MiB)
    assert int(result["peak_traced"]) <= config.memory_bound(), result  # type: ignore[call-overload]
    assert int(result["peak_traced"]) < size / 4  # type: ignore[call-overload]


class _Killed(BaseException):
    """Stands for SIGKILL: nothing of the upload runs after it (not even ``except Exception``)."""


class DiesAfterHashPass(LocalCheckpointStore):
    """The process dies right after the hash pass: the first checkpoint is written, then nothing happens."""

    def save(self, key: str, state: dict[str, Any]) -> None:
        super().save(key, state)
        raise _Killed


def rewrite_keeping_size_and_mtime(path: Path, seed: int) -> str:
    """New content of the same size, then the old mtime put back (as ``cp -p``, ``rsync -t`` or tar do)."""
    before = os.stat(path)
    sha1 = write_file(path, before.st_size, seed=seed)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    return sha1


def test_checkpoint_of_other_content_with_same_size_and_mtime_is_never_trusted(
    make_client: Callable[..., CosClient], emulator: CosEmulator, tmp_path: Path, api_version: str
) -> None:
    """Issue 7 §1: killed after the hash pass of X1; X1 also elsewhere in the bucket; the file rewritten
    with X2 of the same size and mtime. The resume must upload X2 (no instant upload of X1)."""
    src = tmp_path / "src.bin"
    x1 = write_file(src, 2 * MiB + 5, seed=1)
    client = make_client(api_version)
    client.upload_file(str(src), "/elsewhere/x1.bin")
    ckpt = tmp_path / "ckpt"
    with pytest.raises(_Killed):
        client.upload_file(str(src), "/target.bin", checkpoint_store=DiesAfterHashPass(ckpt))
    (saved,) = ckpt.glob("*.json")
    assert json.loads(saved.read_text())["sha1"] == x1
    x2 = rewrite_keeping_size_and_mtime(src, seed=2)
    assert x2 != x1
    result = client.upload_file(str(src), "/target.bin", checkpoint_store=LocalCheckpointStore(ckpt))
    assert result.sha1 == x2 and not result.instant and result.bytes_sent == 2 * MiB + 5
    info = client.stat("/target.bin")
    assert info is not None and info.sha == x2
    assert stored_sha1(emulator, "/target.bin") == x2
    assert list(ckpt.glob("*.json")) == []
