"""Transfer engine benchmarks (run on demand, never by pytest). Prints figures; see BENCHMARKS.md.

    uv run python benchmarks/bench_upload.py               # 1 GiB files (needs ~6 GiB free in /tmp)
    uv run python benchmarks/bench_upload.py --quick       # 256 MiB, fewer repetitions
    uv run python benchmarks/bench_upload.py --size 512M

Every figure is a ratio measured in this one run on this machine:
 1. upload_file slice phase (v1, v2) / bare ``requests`` POSTs of the same pre-built slices, same
    concurrency, same emulator (target >= 0.9); the hash phase is reported separately.
 2. emulator ingest rate / a trivial server that discards bodies (is the emulator the bottleneck?).
 3. hashlib.sha1 time / our hash pass (v1: SHA-1; v2: SHA-1 + uploadparts) (target >= 0.5).
 4. peak RSS uploading a big file / a file 8x smaller, separate processes (target <= 1.1).
 5. instant upload (秒传) of an already stored file: time / plain SHA-1 time (target <= 1.1).
 6. qcloud-cos-py3 (third party, v2, sequential) time / ours: our speedup.
Plus the max_workers sweep (1, 2, 4, 8) that chose the default.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from airflow_provider_cos.emulator import DEMO
from airflow_provider_cos.protocol.messages import CosTarget, HttpRequest, SliceSession, encode_request
from airflow_provider_cos.protocol.operations import V2Dialect, dialect_for
from airflow_provider_cos.protocol.signing import Credentials, Signer
from airflow_provider_cos.transfer import CosClient, TransferConfig
from airflow_provider_cos.transfer.hashing import FileIdentity, hash_file
from airflow_provider_cos.transfer.plan import SlicePlan

MiB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[1]
CREDS = Credentials(DEMO.secret_id, DEMO.secret_key)


def parse_size(text: str) -> int:
    units = {"K": 1024, "M": MiB, "G": 1024 * MiB}
    text = text.strip().upper().rstrip("B").rstrip("I")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def make_file(path: Path, size: int, seed: int) -> None:
    block = os.urandom(8 * MiB)
    tag = seed.to_bytes(8, "little")
    with open(path, "wb") as f:
        written = 0
        while written < size:
            chunk = tag + block[8 : min(len(block), size - written)]
            f.write(chunk[: size - written])
            written += len(chunk[: size - written])


class Emulator:
    """The emulator CLI in its own process (so client and server do not share a GIL)."""

    def __init__(self, data_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "airflow_provider_cos.emulator",
                "--port",
                "0",
                "--data-dir",
                str(data_dir),
                "--log-level",
                "WARNING",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        self.url = line[line.index("http://") :].split()[0]

    def stats(self) -> dict[str, Any]:
        return dict(requests.get(self.url + "/_emulator/stats", timeout=10).json())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class _Discard(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    answer = json.dumps({"code": 0, "message": "SUCCESS", "data": {"offset": 0, "session": "s"}}).encode()

    def do_POST(self) -> None:
        remaining = int(self.headers.get("Content-Length") or 0)
        while remaining:
            got = self.rfile.read(min(remaining, 1 << 20))
            if not got:
                return
            remaining -= len(got)
        # one write: head and body in one segment (no Nagle/delayed-ACK stall)
        self.wfile.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(self.answer)).encode()
            + b"\r\n\r\n"
            + self.answer
        )

    def log_message(self, *args: Any) -> None:
        return None


def serve(handler: type[BaseHTTPRequestHandler], port_file: str) -> None:
    """Serve ``handler`` (threaded) on a free loopback port, written to ``port_file``, until killed."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    Path(port_file).write_text(str(srv.server_port))
    srv.serve_forever()


def discard_server_main(port_file: str) -> None:
    serve(_Discard, port_file)


def client_for(url: str, api: str, **cfg: Any) -> CosClient:
    return CosClient(
        target=CosTarget(url, api, DEMO.appid, DEMO.bucket),  # type: ignore[arg-type]
        credentials=CREDS,
        config=TransferConfig(**cfg),
    )


def session_pool(workers: int) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    adapter = HTTPAdapter(pool_maxsize=workers + 2, max_retries=0)
    s.mount("http://", adapter)
    return s


def prebuilt_slices(
    url: str, api: str, path: Path, cos_path: str, slice_size: int, session_id: str
) -> list[tuple[bool, HttpRequest]]:
    target = CosTarget(url, api, DEMO.appid, DEMO.bucket)  # type: ignore[arg-type]
    dialect = dialect_for(api)
    signer = Signer(CREDS, validity=3600)
    out = []
    size = path.stat().st_size
    with open(path, "rb") as f:
        for s in SlicePlan(size, slice_size).slices():
            data = os.pread(f.fileno(), s.length, s.offset)
            req = dialect.prepare_slice_data(cos_path, session=session_id, offset=s.offset, length=s.length)
            out.append((s.final, encode_request(target, req, signer.multi(DEMO.appid, DEMO.bucket), data)))
    return out


def post_all(reqs: list[tuple[bool, HttpRequest]], workers: int, *, final_last: bool) -> float:
    s = session_pool(workers)

    def post(item: tuple[bool, HttpRequest]) -> None:
        r = s.post(item[1].url, data=item[1].body, headers=dict(item[1].headers), timeout=(10, 120))
        assert r.status_code == 200, r.text[:200]

    body = [r for r in reqs if not (final_last and r[0])]
    finals = [r for r in reqs if final_last and r[0]]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(post, body))
    for r in finals:
        post(r)
    elapsed = time.perf_counter() - t0
    s.close()
    return elapsed


def bare_ceiling(
    url: str, api: str, path: Path, cos_path: str, workers: int, slice_size: int, client: CosClient
) -> float:
    """Seconds for bare requests POSTs of pre-built slices into a real session (then completed)."""
    dialect = dialect_for(api)
    target = client.target
    signer = Signer(CREDS, validity=3600)
    size = path.stat().st_size
    init = dialect.prepare_slice_init(cos_path, filesize=size, sha=_sha1(path), slice_size=slice_size)
    http = encode_request(target, init, signer.multi(DEMO.appid, DEMO.bucket))
    r = requests.post(http.url, data=http.body, headers=dict(http.headers), timeout=30)
    opened = dialect.process_slice_init(r.status_code, r.content, path=cos_path)
    assert isinstance(opened, SliceSession), opened
    reqs = prebuilt_slices(url, api, path, cos_path, opened.slice_size, opened.session)
    t0 = time.perf_counter()
    post_all(reqs, workers, final_last=api == "v1")
    if isinstance(dialect, V2Dialect):  # completion is part of the slice phase on both sides
        fin = dialect.prepare_slice_finish(cos_path, session=opened.session, filesize=size, sha=_sha1(path))
        http = encode_request(target, fin, signer.multi(DEMO.appid, DEMO.bucket))
        r = requests.post(http.url, data=http.body, headers=dict(http.headers), timeout=120)
        dialect.process_slice_finish(r.status_code, r.content, path=cos_path)
    elapsed = time.perf_counter() - t0
    del reqs
    client.delete(cos_path)
    return elapsed


_SHA_CACHE: dict[str, str] = {}


def _sha1(path: Path) -> str:
    key = f"{path}:{path.stat().st_mtime_ns}"
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = plain_sha1(path)[0]
    return _SHA_CACHE[key]


def plain_sha1(path: Path, chunk: int = 4 * MiB) -> tuple[str, float]:
    buf = bytearray(chunk)
    view = memoryview(buf)
    h = hashlib.sha1()
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest(), time.perf_counter() - t0


def our_hash(path: Path, parts: int | None) -> float:
    fd = os.open(path, os.O_RDONLY)
    try:
        t0 = time.perf_counter()
        hash_file(fd, FileIdentity.of_path(str(path)), path=str(path), parts_slice_size=parts)
        return time.perf_counter() - t0
    finally:
        os.close(fd)


def best(fn: Any, reps: int) -> float:
    return float(min(fn() for _ in range(reps)))


def rss_child(url: str, path: Path, cos_path: str) -> int:
    cmd = [
        sys.executable,
        "-m",
        "tests.support.uploader",
        "--url",
        url,
        "--api",
        "v2",
        "--file",
        str(path),
        "--cos-path",
        cos_path,
        "--slice-size",
        str(MiB),
        "--max-workers",
        "4",
        "--threshold",
        str(20 * MiB),
    ]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True, timeout=1800)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    # ru_maxrss survives exec on Linux (it would report the parent's peak): use the child's own VmHWM
    return int(res.get("vmhwm_kib") or res["maxrss_kib"])


def qcloud_upload(url: str, path: Path, name: str) -> float:
    from qcloud_cos_py3 import CosBucket

    bucket = CosBucket(int(DEMO.appid), DEMO.secret_id, DEMO.secret_key, DEMO.bucket, region="gz")
    bucket._format_url = lambda pattern, **extra: (url + pattern).format(**bucket.config._asdict(), **extra)
    t0 = time.perf_counter()
    r = bucket.upload_slice_file(str(path), MiB, name, dir_name=None)
    elapsed = time.perf_counter() - t0
    assert r.get("access_url"), r
    return elapsed


def measure_ingest(fig: dict[str, Any], work: Path, src: Path, url: str, size: int, reps: int) -> None:
    """#2 alone (``--only-ingest``): bare v2 POSTs into the emulator (incl. finish) vs the discard server."""
    c = client_for(url, "v2")
    fig["e2e"] = {
        "v2": {
            "bare_s": best(
                lambda: bare_ceiling(url, "v2", src, "/bench/bare-v2.bin", TransferConfig().max_workers, MiB, c), reps
            )
        }
    }
    c.close()
    measure_discard(fig, work, src, size, reps)


def measure_instant(fig: dict[str, Any], src: Path, url: str, reps: int, setup: CosClient) -> None:
    """#5 alone (``--only-instant``), also run by :func:`measure_speed`."""
    t_sha = best(lambda: plain_sha1(src)[1], reps + 1)
    c = client_for(url, "v1")
    c.upload_file(str(src), "/bench/stored.bin")
    inst, rest = [], []
    for i in range(reps + 1):
        r = c.upload_file(str(src), f"/bench/instant{i}.bin")
        assert r.instant
        inst.append(r.elapsed)
        rest.append(r.elapsed - r.hash_seconds)
    c.close()
    fig["instant"] = {"instant_s": min(inst), "sha1_s": t_sha, "ratio": min(inst) / t_sha, "non_hash_s": min(rest)}
    print(
        f"5. instant upload {min(inst):.2f}s vs SHA-1 {t_sha:.2f}s (measured just before) -> ratio "
        f"{min(inst) / t_sha:.2f}; outside the hash (folder stat, init, verify stat): {min(rest) * 1000:.1f} ms",
        flush=True,
    )
    setup.delete("/bench/stored.bin")
    for i in range(reps + 1):
        setup.delete(f"/bench/instant{i}.bin")


def measure_discard(fig: dict[str, Any], work: Path, src: Path, size: int, reps: int) -> None:
    workers = TransferConfig().max_workers
    port_file = work / "discard.port"
    discard = subprocess.Popen([sys.executable, __file__, "--discard-server", str(port_file)], cwd=ROOT, text=True)
    for _ in range(100):
        if port_file.exists() and port_file.read_text():
            break
        time.sleep(0.05)
    durl = f"http://127.0.0.1:{port_file.read_text()}"
    reqs = prebuilt_slices(durl, "v2", src, "/bench/discard.bin", MiB, "s")
    try:
        t_discard = best(lambda: post_all(reqs, workers, final_last=False), reps)
    finally:
        reqs.clear()
        discard.terminate()
        discard.wait(timeout=10)
    t_emu = fig["e2e"]["v2"]["bare_s"]
    fig["ingest"] = {
        "emulator_MBps": size / t_emu / 1e6,
        "discard_MBps": size / t_discard / 1e6,
        "ratio": t_discard / t_emu,
    }
    print(
        f"2. emulator ingest {size / t_emu / 1e6:.0f} MB/s vs discard server {size / t_discard / 1e6:.0f} "
        f"MB/s -> ratio {t_discard / t_emu:.2f}",
        flush=True,
    )


def measure_speed(fig: dict[str, Any], work: Path, src: Path, url: str, size: int, reps: int, setup: CosClient) -> None:
    # 3. hash pass
    t_sha = best(lambda: plain_sha1(src)[1], reps + 1)
    t_v1 = best(lambda: our_hash(src, None), reps + 1)
    t_v2 = best(lambda: our_hash(src, MiB), reps + 1)
    fig["hash"] = {
        "hashlib_s": t_sha,
        "v1_s": t_v1,
        "v2_s": t_v2,
        "ratio_v1": t_sha / t_v1,
        "ratio_v2": t_sha / t_v2,
        "hashlib_MBps": size / t_sha / 1e6,
    }
    print(
        f"3. hash pass: hashlib {size / t_sha / 1e6:.0f} MB/s; ours v1 ratio {t_sha / t_v1:.2f}, "
        f"v2 (sha1+uploadparts) ratio {t_sha / t_v2:.2f}",
        flush=True,
    )

    # max_workers sweep (v2, slice phase)
    sweep_size = max(128 * MiB, size // 4)
    sweep_src = work / "sweep.bin"
    make_file(sweep_src, sweep_size, 2)
    fig["sweep"] = {}
    for w in (1, 2, 4, 8):
        c = client_for(url, "v2", max_workers=w)
        rates = []
        for _ in range(reps):
            r = c.upload_file(str(sweep_src), "/bench/sweep.bin")
            rates.append(sweep_size / (r.elapsed - r.hash_seconds) / 1e6)
            c.delete("/bench/sweep.bin")
        c.close()
        fig["sweep"][w] = max(rates)
        print(f"   max_workers={w}: slice phase {max(rates):.0f} MB/s", flush=True)
    sweep_src.unlink()

    # 1. end to end vs bare requests ceiling
    workers = TransferConfig().max_workers
    fig["e2e"] = {}
    for api in ("v1", "v2"):
        c = client_for(url, api)
        ours, hash_s, total = [], [], []
        for _ in range(reps):
            r = c.upload_file(str(src), f"/bench/{api}.bin")
            ours.append(r.elapsed - r.hash_seconds)
            hash_s.append(r.hash_seconds)
            total.append(r.elapsed)
            c.delete(f"/bench/{api}.bin")
        ceiling = best(
            lambda api=api, c=c: bare_ceiling(url, api, src, f"/bench/bare-{api}.bin", workers, MiB, c), reps
        )
        c.close()
        fig["e2e"][api] = {
            "slice_phase_s": min(ours),
            "hash_s": min(hash_s),
            "total_s": min(total),
            "bare_s": ceiling,
            "ratio_slice_phase": ceiling / min(ours),
            "ratio_end_to_end": ceiling / min(total),
            "MBps_slice_phase": size / min(ours) / 1e6,
            "MBps_bare": size / ceiling / 1e6,
        }
        print(
            f"1. {api}: slice phase {size / min(ours) / 1e6:.0f} MB/s vs bare requests "
            f"{size / ceiling / 1e6:.0f} MB/s -> ratio {ceiling / min(ours):.2f}; hash phase "
            f"{min(hash_s):.2f}s; end-to-end ratio {ceiling / min(total):.2f}",
            flush=True,
        )

    # 2. emulator vs a discarding server (same pre-built bodies, same concurrency)
    measure_discard(fig, work, src, size, reps)

    # 5. instant upload of a stored file
    measure_instant(fig, src, url, reps, setup)

    # 6. qcloud-cos-py3
    t_q = qcloud_upload(url, src, "qcloud.bin")
    c = client_for(url, "v2")
    setup.delete("/qcloud.bin")
    r = c.upload_file(str(src), "/bench/ours.bin")
    c.close()
    fig["qcloud"] = {"qcloud_s": t_q, "ours_s": r.elapsed, "speedup": t_q / r.elapsed}
    print(
        f"6. qcloud-cos-py3 {t_q:.2f}s ({size / t_q / 1e6:.0f} MB/s) vs ours {r.elapsed:.2f}s "
        f"(hash included) -> speedup {t_q / r.elapsed:.2f}x",
        flush=True,
    )
    setup.delete("/bench/ours.bin")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default=None, help="file size (default 1G; --quick: 256M)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--workdir", default="/tmp")
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--only-rss", action="store_true")
    ap.add_argument("--only-ingest", action="store_true", help="only #2 (emulator vs discard server)")
    ap.add_argument("--only-instant", action="store_true", help="only #5 (instant upload)")
    args = ap.parse_args()
    size = parse_size(args.size) if args.size else (256 * MiB if args.quick else 1024 * MiB)
    reps = 1 if args.quick else 2
    work = Path(tempfile.mkdtemp(prefix="cos-bench-", dir=args.workdir))
    emu: Emulator | None = None
    fig: dict[str, Any] = {"size_bytes": size}
    try:
        src = work / "src.bin"
        make_file(src, size, 1)
        plain_sha1(src)  # warm the page cache
        emu = Emulator(work / "emu")
        url = emu.url
        print(
            f"# {platform.processor() or platform.machine()}, nproc={os.cpu_count()}, "
            f"Python {platform.python_version()}, file {size / MiB:.0f} MiB, emulator {url}",
            flush=True,
        )
        setup = client_for(url, "v2")
        setup.create_folder("/bench/")

        if args.only_rss:
            src.unlink(missing_ok=True)
        only = args.only_ingest or args.only_instant
        if args.only_ingest:
            measure_ingest(fig, work, src, url, size, reps)
        if args.only_instant:
            measure_instant(fig, src, url, reps, setup)
        if not args.only_rss and not only:
            measure_speed(fig, work, src, url, size, reps, setup)
        # 4. peak RSS, big vs 8x smaller file (separate processes)
        if not args.skip_rss and not only:
            big = 2048 * MiB if not args.quick else 512 * MiB
            small = big // 8
            src.unlink(missing_ok=True)
            for name, n, seed in (("small.bin", small, 3), ("big.bin", big, 4)):
                make_file(work / name, n, seed)
            rss_small = rss_child(url, work / "small.bin", "/bench/rss-small.bin")
            setup.delete("/bench/rss-small.bin")
            rss_big = rss_child(url, work / "big.bin", "/bench/rss-big.bin")
            setup.delete("/bench/rss-big.bin")
            fig["rss"] = {
                "small_bytes": small,
                "big_bytes": big,
                "small_kib": rss_small,
                "big_kib": rss_big,
                "ratio": rss_big / rss_small,
            }
            print(
                f"4. peak RSS {small / MiB:.0f} MiB file {rss_small / 1024:.1f} MiB, {big / MiB:.0f} MiB file "
                f"{rss_big / 1024:.1f} MiB -> ratio {rss_big / rss_small:.3f}",
                flush=True,
            )
        setup.close()
        print("JSON " + json.dumps(fig))
    finally:
        if emu is not None:
            emu.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--discard-server":
        discard_server_main(sys.argv[2])
        sys.exit(0)
    sys.exit(main())
