"""CPU per GiB of the slice phase: our client vs the bare ``requests`` loop of #1, plus the emulator's.

    uv run python benchmarks/slice_cpu.py [--size 512M] [--api v2] [--reps 3] [--no-bare]

Client user/sys CPU from ``getrusage`` around ``TransferCoordinator.run_slices`` (ours) and around the
bare POST loop (the bare bodies are built before the clock starts); emulator CPU from
``/proc/<pid>/stat`` (Linux). Used for the "Client CPU per slice (#1)" table in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_upload as B

from airflow_provider_cos.transfer.coordinator import TransferCoordinator

GiB = 1 << 30


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="512M")
    ap.add_argument("--api", default="v2", choices=("v1", "v2"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-bare", action="store_true")
    ap.add_argument("--workdir", default="/tmp")
    args = ap.parse_args()
    size = B.parse_size(args.size)
    work = Path(tempfile.mkdtemp(prefix="cos-cpu-", dir=args.workdir))
    emu: B.Emulator | None = None
    try:
        src = work / "src.bin"
        B.make_file(src, size, 1)
        B.plain_sha1(src)
        emu = B.Emulator(work / "emu")
        pid = emu.proc.pid

        def emu_cpu() -> float:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        def sample() -> tuple[float, float, float, float]:
            r = resource.getrusage(resource.RUSAGE_SELF)
            return r.ru_utime, r.ru_stime, emu_cpu(), time.perf_counter()

        def report(label: str, a: tuple[float, ...], b: tuple[float, ...]) -> None:
            k = GiB / size
            print(
                f"{label}: client user {(b[0] - a[0]) * k:.2f} sys {(b[1] - a[1]) * k:.2f} s/GiB, emulator "
                f"{(b[2] - a[2]) * k:.2f} s/GiB, {size / (b[3] - a[3]) / 1e6:.0f} MB/s",
                flush=True,
            )

        real_run = TransferCoordinator.run_slices

        def timed_run(self: TransferCoordinator, *a: Any, **kw: Any) -> None:
            before = sample()
            try:
                real_run(self, *a, **kw)
            finally:
                report(f"ours {args.api}", before, sample())

        TransferCoordinator.run_slices = timed_run  # type: ignore[method-assign]
        real_post_all = B.post_all

        def timed_post_all(reqs: Any, workers: int, *, final_last: bool) -> float:
            before = sample()
            elapsed = real_post_all(reqs, workers, final_last=final_last)
            report(f"bare {args.api}", before, sample())
            return elapsed

        B.post_all = timed_post_all
        client = B.client_for(emu.url, args.api)
        client.ensure_folders("/bench/x")
        for i in range(args.reps):  # v1: the final slice is sent outside run_slices (one slice less counted)
            client.upload_file(str(src), f"/bench/cpu{i}.bin")
            client.delete(f"/bench/cpu{i}.bin")
        if not args.no_bare:
            for _ in range(args.reps):
                B.bare_ceiling(emu.url, args.api, src, "/bench/bare.bin", client.config.max_workers, B.MiB, client)
        client.close()
    finally:
        if emu is not None:
            emu.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
