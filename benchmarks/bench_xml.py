"""XML API (``api_version="xml"``) benchmarks, run on demand (never by pytest). See BENCHMARKS.md, "xml".

    uv run python benchmarks/bench_xml.py            # 256 MiB file, 2 GiB sparse file for memory
    uv run python benchmarks/bench_xml.py --size 128M --big 1G

Ratios measured in this one run, same machine, same emulator (in its own process), each client with its
defaults unless said otherwise; the clients take turns in a rotating order, best of ``--repeat``:
 X1. a bare ``requests`` loop of the same parts as ours (Initiate, the same signed UploadParts at the same
     concurrency, Complete; no checks) time / CosClient.upload_file (xml, multipart) time (target >= 0.9
     means "no overhead").
 X2. the official SDK's ``upload_file`` (qcloud_cos: 1 MB parts, MAXThread 5) time / ours (target >= 2);
     also against ours with the SDK's part size (1 MiB), and the CPU seconds each client and the emulator
     spent (client CPU is what a remote server would leave as the client's limit).
 X2t. the same two clients against a thin XML server (``--thin``: this file's ``ThinXmlServer``, its own
     process: reads each body, answers its CRC-64 and folds them at Complete; no MD5, no storage, no
     signature check): a server that is not the bottleneck, as COS is not, so the clients' own costs show.
 X3. CRC-64 (fastcrc) throughput / hashlib.sha1 throughput on the same buffer.
 X4. peak RSS (VmHWM) of an uploader process, a big sparse file / a file 8x smaller (target <= 1.1).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from requests.adapters import HTTPAdapter

from airflow_provider_cos.emulator import DEMO
from airflow_provider_cos.protocol.crc64 import Crc64, crc64, crc64_fold
from airflow_provider_cos.protocol.messages import CosTarget
from airflow_provider_cos.protocol.signing import Credentials
from airflow_provider_cos.protocol.xmlmessages import (
    CompletedUpload,
    CompletePart,
    InitiatedUpload,
    UploadListing,
    parse_complete_request,
)
from airflow_provider_cos.protocol.xmloperations import XML, encode_xml_request
from airflow_provider_cos.protocol.xmlsigning import XmlCredentials, XmlSigner
from airflow_provider_cos.transfer import CosClient, TransferConfig
from airflow_provider_cos.transfer.config import DEFAULT_MAX_WORKERS, DEFAULT_SLICE_SIZE
from airflow_provider_cos.transfer.multipart import part_size_for, plan_parts
from airflow_provider_cos.transfer.xmlcalls import xml_target

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_upload import Emulator, serve  # the emulator in its own process: no shared GIL

MiB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[1]
PART = DEFAULT_SLICE_SIZE["xml"]  # what ours sends by default; the bare loop sends the same parts
WORKERS = DEFAULT_MAX_WORKERS


def parse_size(text: str) -> int:
    units = {"K": 1024, "M": MiB, "G": 1024 * MiB}
    text = text.strip().upper().rstrip("B").rstrip("I")
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


class _Thin(BaseHTTPRequestHandler):
    """Just enough of the XML API for ``upload_file`` (ours and the SDK's): ListMultipartUploads (none),
    Initiate, UploadPart (the body read and CRC-64'd), Complete (the parts' CRCs folded), HeadObject."""

    protocol_version = "HTTP/1.1"
    uploads: dict[str, dict[int, tuple[int, int]]] = {}  # upload id -> part number -> (crc, size)
    objects: dict[str, tuple[int, int]] = {}  # key -> (crc, size)

    def _body(self) -> bytes | None:
        remaining, crc, chunks = int(self.headers.get("Content-Length") or 0), Crc64(), []
        small = remaining < 64 * 1024
        while remaining:
            got = self.rfile.read(min(remaining, 1 << 20))
            if not got:
                return None
            crc.update(got)
            if small:
                chunks.append(got)
            remaining -= len(got)
        self._crc = crc
        return b"".join(chunks)

    def _answer(self, status: int, body: bytes = b"", headers: tuple[tuple[str, str], ...] = ()) -> None:
        head = f"HTTP/1.1 {status} OK\r\nContent-Length: {len(body)}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
        self.wfile.write(head.encode() + b"\r\n" + body)

    def _route(self) -> tuple[str, dict[str, list[str]]]:
        url = urlsplit(self.path)
        return url.path.lstrip("/"), parse_qs(url.query, keep_blank_values=True)

    def do_GET(self) -> None:
        self._body()
        listing = UploadListing(f"{DEMO.bucket}-{DEMO.appid}", "", None, "", "", 1000, False, "", "", ())
        self._answer(200, listing.render(), (("Content-Type", "application/xml"),))

    def do_POST(self) -> None:
        key, query = self._route()
        body = self._body()
        if "uploads" in query:
            upload_id = os.urandom(8).hex()
            self.uploads[upload_id] = {}
            self._answer(200, InitiatedUpload(f"{DEMO.bucket}-{DEMO.appid}", key, upload_id).render())
            return
        parts = self.uploads.pop(query["uploadId"][0])
        listed = [parts[p.part_number] for p in parse_complete_request(body or b"")]
        crc = crc64_fold(listed)
        self.objects[key] = (crc, sum(size for _, size in listed))
        done = CompletedUpload("http://thin/" + key, f"{DEMO.bucket}-{DEMO.appid}", key, f'"{crc:032x}-{len(listed)}"')
        self._answer(200, done.render(), (("x-cos-hash-crc64ecma", str(crc)),))

    def do_PUT(self) -> None:
        key, query = self._route()
        self._body()
        crc = int(self._crc.decimal())
        size = int(self.headers.get("Content-Length") or 0)
        if "uploadId" in query:
            self.uploads[query["uploadId"][0]][int(query["partNumber"][0])] = (crc, size)
        else:
            self.objects[key] = (crc, size)
        self._answer(200, b"", (("ETag", f'"{crc:032x}"'), ("x-cos-hash-crc64ecma", str(crc))))

    def do_HEAD(self) -> None:
        key, _ = self._route()
        crc, size = self.objects[key]
        head = f'HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nETag: "{crc:032x}"\r\nx-cos-hash-crc64ecma: {crc}\r\n\r\n'
        self.wfile.write(head.encode())

    def log_message(self, *args: Any) -> None:
        return None


class ThinXmlServer:
    """``_Thin`` in its own process (no shared GIL with the client)."""

    def __init__(self, work: Path) -> None:
        port_file = work / "thin.port"
        self.proc = subprocess.Popen([sys.executable, __file__, "--thin-server", str(port_file)], cwd=ROOT)
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline:
                raise RuntimeError("the thin server did not start")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{port_file.read_text()}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def ours(url: str, path: Path, key: str, *, verify: bool = True, part: int | None = None) -> float:
    config = TransferConfig(slice_size=part, verify=verify)  # the defaults, as a connection without knobs
    client = CosClient(
        target=CosTarget(url, "xml", DEMO.appid, DEMO.bucket),
        credentials=Credentials(DEMO.secret_id, DEMO.secret_key),
        config=config,
    )
    started = time.perf_counter()
    client.upload_file(str(path), key)
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed


def bare_loop(url: str, path: Path, key: str) -> float:
    """Initiate, the same parts as signed PUTs through a pooled requests.Session, Complete; no checks."""
    target = xml_target(CosTarget(url, "xml", DEMO.appid, DEMO.bucket))
    signer = XmlSigner(XmlCredentials(DEMO.secret_id, DEMO.secret_key))
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_maxsize=WORKERS + 2))
    size = path.stat().st_size
    parts = plan_parts(size, part_size_for(size, PART))
    fd = os.open(path, os.O_RDONLY)

    def send(request, data=None):  # type: ignore[no-untyped-def]
        http = encode_xml_request(target, request, signer)
        return session.request(http.method, http.url, headers=dict(http.headers), data=data or http.body)

    started = time.perf_counter()
    answer = send(XML.prepare_initiate(key.lstrip("/")))
    upload_id = XML.process_initiate(answer.status_code, list(answer.headers.items()), answer.content).upload_id

    def put(number: int) -> CompletePart:
        slc = parts[number - 1]
        data = os.pread(fd, slc.length, slc.offset)
        request = XML.prepare_upload_part(key.lstrip("/"), upload_id=upload_id, part_number=number, data_len=slc.length)
        return CompletePart(number, send(request, data).headers["ETag"])

    with ThreadPoolExecutor(WORKERS) as pool:
        done = list(pool.map(put, range(1, len(parts) + 1)))
    answer = send(XML.prepare_complete(key.lstrip("/"), upload_id=upload_id, parts=done))
    assert answer.status_code == 200, answer.text
    elapsed = time.perf_counter() - started
    os.close(fd)
    session.close()
    return elapsed


def sdk(url: str, path: Path, key: str) -> float:
    from qcloud_cos import CosConfig, CosS3Client

    client = CosS3Client(
        CosConfig(
            Region="ap-guangzhou",
            SecretId=DEMO.secret_id,
            SecretKey=DEMO.secret_key,
            Scheme="http",
            Proxies={"http": url},
        )
    )
    started = time.perf_counter()
    client.upload_file(Bucket=f"{DEMO.bucket}-{DEMO.appid}", Key=key.lstrip("/"), LocalFilePath=str(path))
    return time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def throughput(fn, data: bytes) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        fn(data)
        best = min(best, time.perf_counter() - started)
    return len(data) / best / MiB


def peak_rss(url: str, path: Path, key: str) -> int:
    cmd = [
        sys.executable,
        "-m",
        "tests.support.uploader",
        "--url",
        url,
        "--api",
        "xml",
        "--file",
        str(path),
        "--cos-path",
        key,
        "--slice-size",
        str(PART),
        "--max-workers",
        str(WORKERS),
        "--threshold",
        str(MiB),
    ]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True, timeout=3600)
    return int(json.loads(out.stdout.strip().splitlines()[-1])["vmhwm_kib"])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="256M")
    parser.add_argument("--big", default="2G")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--on-disk", action="store_true", help="scratch and emulator storage in TMPDIR, not /dev/shm")
    parser.add_argument("--thin", action="store_true", help="also X2t: ours vs the SDK against a thin XML server")
    parser.add_argument("--thin-server", metavar="PORT_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.thin_server:
        serve(_Thin, args.thin_server)
        return 0
    size, big = parse_size(args.size), parse_size(args.big)
    # In memory when the machine has /dev/shm: the emulator's storage then costs no disk writeback, which
    # would land on whichever client runs next. Each client overwrites its one object (bounded footprint).
    shm = Path("/dev/shm")
    scratch = Path(tempfile.mkdtemp(prefix="cos-bench-xml-", dir=shm if shm.is_dir() and not args.on_disk else None))
    src = scratch / "src.bin"
    with open(src, "wb") as fh:
        for _ in range(size // MiB):
            fh.write(os.urandom(MiB))
    print(f"file {size / MiB:.0f} MiB, parts {PART // MiB} MiB, {WORKERS} in flight, {os.cpu_count()} cores")
    emu = Emulator(scratch / "emu")
    try:
        runs = {
            "ours": lambda k: ours(emu.url, src, k),
            "ours-noverify": lambda k: ours(emu.url, src, k, verify=False),
            "ours-1mib": lambda k: ours(emu.url, src, k, part=MiB),
            "bare": lambda k: bare_loop(emu.url, src, k),
            "sdk": lambda k: sdk(emu.url, src, k),
        }
        times: dict[str, list[float]] = {name: [] for name in runs}
        cpu: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
        names = list(runs)
        for i in range(args.repeat):
            for name in names[i % len(names) :] + names[: i % len(names)]:  # rotate who goes first
                me, server = cpu_seconds(os.getpid()), cpu_seconds(emu.proc.pid)
                times[name].append(runs[name](f"/{name}.bin"))
                cpu[name].append((cpu_seconds(os.getpid()) - me, cpu_seconds(emu.proc.pid) - server))
        best = {k: min(v) for k, v in times.items()}
        print(f"parts: ours {PART // MiB} MiB x {WORKERS} (defaults), SDK 1 MB x 5 (defaults)")
        for name, value in best.items():
            client_cpu = min(c for c, _ in cpu[name])
            server_cpu = min(s for _, s in cpu[name])
            print(
                f"  {name:13s} best {value:6.2f} s  {size / value / MiB:7.1f} MiB/s  CPU client {client_cpu:5.2f} s"
                f" emulator {server_cpu:5.2f} s  (all: " + ", ".join(f"{t:.2f}" for t in times[name]) + ")"
            )
        print(
            f"X1 bare loop / ours = {best['bare'] / best['ours']:.2f} "
            f"(verify=False: {best['bare'] / best['ours-noverify']:.2f})"
        )
        print(
            f"X2 SDK upload_file / ours = {best['sdk'] / best['ours']:.2f} "
            f"(ours with the SDK's 1 MiB parts: {best['sdk'] / best['ours-1mib']:.2f}; client CPU SDK / ours: "
            f"{min(c for c, _ in cpu['sdk']) / min(c for c, _ in cpu['ours']):.2f})"
        )
        if args.thin:
            thin = ThinXmlServer(scratch)
            try:
                thin_runs = {"ours": lambda k: ours(thin.url, src, k), "sdk": lambda k: sdk(thin.url, src, k)}
                thin_times: dict[str, list[float]] = {name: [] for name in thin_runs}
                thin_cpu: dict[str, list[float]] = {name: [] for name in thin_runs}
                for i in range(args.repeat):
                    for name in list(thin_runs)[i % 2 :] + list(thin_runs)[: i % 2]:
                        me = cpu_seconds(os.getpid())
                        thin_times[name].append(thin_runs[name](f"/thin-{name}.bin"))
                        thin_cpu[name].append(cpu_seconds(os.getpid()) - me)
            finally:
                thin.stop()
            for name, values in thin_times.items():
                print(
                    f"  thin server: {name:5s} best {min(values):6.2f} s  {size / min(values) / MiB:7.1f} MiB/s  "
                    f"CPU client {min(thin_cpu[name]):5.2f} s  (all: " + ", ".join(f"{t:.2f}" for t in values) + ")"
                )
            print(f"X2t SDK upload_file / ours, thin server = {min(thin_times['sdk']) / min(thin_times['ours']):.2f}")
        data = src.read_bytes()[: 256 * MiB]
        crc_rate = throughput(crc64, data)
        sha_rate = throughput(lambda d: hashlib.sha1(d).digest(), data)
        print(f"X3 CRC-64 {crc_rate:.0f} MiB/s, SHA-1 {sha_rate:.0f} MiB/s: ratio {crc_rate / sha_rate:.2f}")
        del data
        if args.skip_rss:
            return 0
        small = scratch / "small.sparse"
        large = scratch / "large.sparse"
        for path, n in ((small, big // 8), (large, big)):
            with open(path, "wb") as fh:
                fh.truncate(n)
        rss_small = peak_rss(emu.url, small, "/rss-small.bin")
        rss_large = peak_rss(emu.url, large, "/rss-large.bin")
        print(
            f"X4 peak RSS {big // 8 // MiB} MiB: {rss_small / 1024:.1f} MiB, {big // MiB} MiB: "
            f"{rss_large / 1024:.1f} MiB, ratio {rss_large / rss_small:.2f}"
        )
    finally:
        emu.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
