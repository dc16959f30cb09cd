"""Run one upload in a separate process (for SIGKILL/resume and memory tests).

    python -m tests.support.uploader --url URL --api v2 --file F --cos-path /p [--checkpoint-dir D]
        [--slice-size N] [--max-workers N] [--threshold N] [--tracemalloc]

Prints one JSON line: the UploadResult as a dict (plus ``peak_traced`` / ``maxrss_kib``).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tracemalloc

from airflow_provider_cos.emulator import DEMO
from airflow_provider_cos.protocol.messages import CosTarget
from airflow_provider_cos.protocol.signing import Credentials
from airflow_provider_cos.transfer import CosClient, LocalCheckpointStore, RetryPolicy, TransferConfig


def _vmhwm_kib() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--api", default="v2")
    ap.add_argument("--file", required=True)
    ap.add_argument("--cos-path", required=True)
    ap.add_argument("--checkpoint-dir")
    ap.add_argument("--slice-size", type=int, default=512 * 1024)
    ap.add_argument("--max-workers", type=int, default=2)
    ap.add_argument("--threshold", type=int, default=1024 * 1024)
    ap.add_argument("--tracemalloc", action="store_true")
    args = ap.parse_args(argv)
    if args.tracemalloc:
        tracemalloc.start()
    config = TransferConfig(
        simple_threshold=args.threshold,
        slice_size=args.slice_size,
        max_workers=args.max_workers,
        connect_timeout=2,
        read_timeout=30,
        retry=RetryPolicy(max_attempts=8, backoff_base=0.05, backoff_cap=0.5),
        hash_chunk_size=1024 * 1024,
    )
    client = CosClient(
        target=CosTarget(args.url, args.api, DEMO.appid, DEMO.bucket),
        credentials=Credentials(DEMO.secret_id, DEMO.secret_key),
        config=config,
    )
    store = LocalCheckpointStore(args.checkpoint_dir) if args.checkpoint_dir else None
    try:
        result = client.upload_file(args.file, args.cos_path, checkpoint_store=store)
    finally:
        client.close()
    out = result.as_dict()
    if args.tracemalloc:
        out["peak_traced"] = tracemalloc.get_traced_memory()[1]
    out["maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # may be inherited across exec
    out["vmhwm_kib"] = _vmhwm_kib()  # this process's own peak RSS (Linux)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
