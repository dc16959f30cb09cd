"""Benchmarks of issue 10: many files in one call, downloads, and the download's memory.

    uv run python benchmarks/bench_download.py            # 1000 x 64 KiB, 1 GiB download, 2 GiB RSS
    uv run python benchmarks/bench_download.py --quick    # 200 files, 256 MiB, 512 MiB

A. ``upload_files`` of N files of 64 KiB in one call vs a loop of ``upload_file`` (same client, v2):
   files per second.
B. ``download_file`` of one object vs bare ranged GETs of the same parts (pre-signed, same part size and
   concurrency, ``requests`` with a pooled session, bodies discarded) against the same emulator.
C. Peak RSS (VmHWM of a separate process) of ``download_file`` of a large object.

The emulator runs as its own process (see bench_upload.py). Not run by pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_upload import ROOT, Emulator, client_for, make_file, session_pool

from airflow_provider_cos.emulator import DEMO
from airflow_provider_cos.protocol.messages import CosTarget
from airflow_provider_cos.protocol.paths import encode_path
from airflow_provider_cos.protocol.signing import Credentials, Signer
from airflow_provider_cos.transfer.batch import BatchItem

MiB = 1024 * 1024
PART = 4 * MiB
WORKERS = 4

RSS_CHILD = r"""
import json, sys
from airflow_provider_cos.emulator import DEMO
from airflow_provider_cos.protocol.messages import CosTarget
from airflow_provider_cos.protocol.signing import Credentials
from airflow_provider_cos.transfer import CosClient, TransferConfig
url, cos_path, out = sys.argv[1:4]
client = CosClient(target=CosTarget(url, "v2", DEMO.appid, DEMO.bucket),
                   credentials=Credentials(DEMO.secret_id, DEMO.secret_key), config=TransferConfig(max_workers=4))
result = client.download_file(cos_path, out)
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"vmhwm_kib": hwm, "size": result.size, "bound": client.config.download_memory_bound()}))
"""


def many_files(url: str, work: Path, count: int) -> dict[str, float]:
    src = work / "many"
    src.mkdir()
    for i in range(count):
        (src / f"f{i:05d}.bin").write_bytes(os.urandom(64 * 1024))
    files = sorted(src.iterdir())
    client = client_for(url, "v2", max_workers=WORKERS)
    client.create_folder("/loop/")
    client.create_folder("/batch/")
    t0 = time.perf_counter()
    for f in files:
        client.upload_file(str(f), f"/loop/{f.name}", create_parents=False)
    t_loop = time.perf_counter() - t0
    items = [BatchItem(str(f), f"/batch/{f.name}") for f in files]
    t0 = time.perf_counter()
    result = client.upload_files(items, create_parents=False)
    t_batch = time.perf_counter() - t0
    result.raise_for_failures()
    t0 = time.perf_counter()
    again = client.upload_files(items, create_parents=False)  # every file already stored: skipped
    t_skip = time.perf_counter() - t0
    assert again.count("skipped") == count
    client.close()
    fig = {
        "files": count,
        "loop_fps": count / t_loop,
        "batch_fps": count / t_batch,
        "retry_all_skipped_fps": count / t_skip,
    }
    print(
        f"A. {count} x 64 KiB: one upload_files call {fig['batch_fps']:.0f} files/s vs a loop of upload_file "
        f"{fig['loop_fps']:.0f} files/s ({t_loop / t_batch:.2f}x); a retry with all stored "
        f"{fig['retry_all_skipped_fps']:.0f} files/s"
    )
    return fig


def bare_ranged_gets(url: str, cos_path: str, size: int) -> float:
    target = CosTarget(url, "v2", DEMO.appid, DEMO.bucket)
    signer = Signer(Credentials(DEMO.secret_id, DEMO.secret_key))
    sign = quote(signer.download(DEMO.appid, DEMO.bucket, encode_path(cos_path)), safe="")
    full = f"{target.url(cos_path)}?sign={sign}"
    session = session_pool(WORKERS)

    def get(start: int) -> None:
        end = min(size, start + PART) - 1
        r = session.get(full, headers={"Range": f"bytes={start}-{end}"}, timeout=60)
        assert r.status_code == 206 and len(r.content) == end - start + 1

    t0 = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(get, range(0, size, PART)))
    return time.perf_counter() - t0


def download_speed(url: str, work: Path, size: int, reps: int) -> dict[str, float]:
    src = work / "big.bin"
    make_file(src, size, seed=3)
    client = client_for(url, "v2", max_workers=WORKERS, download_part_size=PART)
    client.upload_file(str(src), "/big.bin")
    src.unlink()
    best_ours, best_bare = float("inf"), float("inf")
    for _ in range(reps):
        out = work / "out.bin"
        t0 = time.perf_counter()
        client.download_file("/big.bin", str(out))
        best_ours = min(best_ours, time.perf_counter() - t0)
        out.unlink()
        best_bare = min(best_bare, bare_ranged_gets(url, "/big.bin", size))
    client.close()
    fig = {
        "size": size,
        "ours_MBps": size / best_ours / 1e6,
        "bare_MBps": size / best_bare / 1e6,
        "ratio": best_bare / best_ours,
    }
    print(
        f"B. download {size / MiB:.0f} MiB: download_file {fig['ours_MBps']:.0f} MB/s (incl. SHA-1 check, fsync, "
        f"rename) vs bare ranged GETs {fig['bare_MBps']:.0f} MB/s: ratio {fig['ratio']:.2f} (best of {reps})"
    )
    return fig


def download_rss(url: str, work: Path, size: int) -> dict[str, float]:
    src = work / "rss.bin"
    make_file(src, size, seed=4)
    client = client_for(url, "v2", max_workers=WORKERS)
    client.upload_file(str(src), "/rss.bin")
    client.close()
    src.unlink()
    out = subprocess.run(
        [sys.executable, "-c", RSS_CHILD, url, "/rss.bin", str(work / "rss-out.bin")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    fig = {"size": size, "vmhwm_MiB": res["vmhwm_kib"] / 1024, "bound_MiB": res["bound"] / MiB}
    print(
        f"C. peak RSS downloading {size / MiB:.0f} MiB: {fig['vmhwm_MiB']:.1f} MiB (VmHWM; the engine's "
        f"documented bound {fig['bound_MiB']:.0f} MiB on top of the interpreter)"
    )
    return fig


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    count, size, rss_size = (200, 256 * MiB, 512 * MiB) if args.quick else (1000, 1024 * MiB, 2048 * MiB)
    work = Path(tempfile.mkdtemp(prefix="cos-bench-dl-"))
    emu = Emulator(work / "emu")
    try:
        figures = {
            "many_files": many_files(emu.url, work, count),
            "download": download_speed(emu.url, work, size, args.reps),
            "download_rss": download_rss(emu.url, work, rss_size),
        }
        print(json.dumps(figures, indent=1))
    finally:
        emu.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
