"""Measure candidate server stacks for the emulator (not a test; run by hand).

    uv run python -m tests.emulator.bench_server_stack

Each server runs in its own process on 127.0.0.1 and answers a small JSON body after reading the whole
request body; the client is one ``requests.Session`` (keep-alive) sending 1 MiB POSTs and small GETs.
Stacks: stdlib ThreadingHTTPServer done right (HTTP/1.1, TCP_NODELAY, one sendall), the same with the
stock write pattern (headers and body in separate writes, no TCP_NODELAY), uvicorn+raw ASGI, and the
emulator itself (upload_slice_data of 1 MiB, which also spools to disk and verifies a signature).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import requests

STDLIB = r"""
import socket, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
GOOD = sys.argv[1] == "good"
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def setup(self):
        super().setup()
        if GOOD:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    def log_message(self, *a): pass
    def _serve(self):
        left = int(self.headers.get("Content-Length") or 0)
        while left:
            left -= len(self.rfile.read(min(262144, left)))
        body = b'{"code":0,"message":"SUCCESS","data":{}}'
        if GOOD:
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                             % len(body) + body)
        else:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
    do_GET = do_POST = _serve
class S(ThreadingHTTPServer):
    daemon_threads = True
s = S(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""

UVICORN = r"""
import socket, uvicorn
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        msg = await receive()
        more = msg.get("more_body", False)
    body = b'{"code":0,"message":"SUCCESS","data":{}}'
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
sock = socket.socket(); sock.bind(("127.0.0.1", 0)); sock.listen(128)
print(sock.getsockname()[1], flush=True)
config = uvicorn.Config(app, log_level="warning", access_log=False)
uvicorn.Server(config).run(sockets=[sock])
"""


def _spawn(code: str, *args: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def _bench(url: str, *, n_big: int = 150, n_small: int = 300) -> tuple[float, float]:
    session = requests.Session()
    big = os.urandom(1 << 20)
    session.post(url, data=big).raise_for_status()
    t0 = time.perf_counter()
    for _ in range(n_big):
        session.post(url, data=big)
    big_rate = n_big / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(n_small):
        session.get(url)
    small_rate = n_small / (time.perf_counter() - t0)
    return big_rate, small_rate


def _bench_emulator(n_big: int = 150, n_small: int = 300) -> tuple[float, float]:
    from tests.emulator.client import Client

    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow_provider_cos.emulator", "--port", "0", "--data-dir", tmp],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        try:
            client = Client(url, "v2")
            size = (n_big + 1) << 20
            data = os.urandom(1 << 20)
            req = client.d.prepare_slice_init("/bench.bin", filesize=size, sha="", slice_size=1 << 20)
            session = client.d.process_slice_init(200, client.send(req).content).session  # type: ignore[union-attr]
            client.put_slice("/bench.bin", session, 0, data)
            t0 = time.perf_counter()
            for i in range(1, n_big + 1):
                client.put_slice("/bench.bin", session, i << 20, data)
            big_rate = n_big / (time.perf_counter() - t0)
            stat = client.d.prepare_stat("/bench.bin")
            t0 = time.perf_counter()
            for _ in range(n_small):
                client.send(stat)
            small_rate = n_small / (time.perf_counter() - t0)
        finally:
            proc.terminate()
            proc.wait()
    return big_rate, small_rate


def main() -> None:
    print(f"cpus={os.cpu_count()} python={sys.version.split()[0]}")
    rows = []
    for name, code, args in (
        ("stdlib, tuned (HTTP/1.1, NODELAY, one write)", STDLIB, ("good",)),
        ("stdlib, stock write pattern", STDLIB, ("stock",)),
        ("uvicorn (httptools/uvloop), raw ASGI", UVICORN, ()),
    ):
        proc, port = _spawn(code, *args)
        try:
            rows.append(
                (
                    name,
                    *_bench(
                        f"http://127.0.0.1:{port}/x",
                        n_big=40 if "stock" in name else 150,
                        n_small=40 if "stock" in name else 300,
                    ),
                )
            )
        finally:
            proc.terminate()
            proc.wait()
    rows.append(("emulator (v2 upload_slice_data / stat)", *_bench_emulator()))
    for name, big, small in rows:
        print(f"{name:50s} {big:8.1f} x 1 MiB POST/s ({big:6.0f} MiB/s)  {small:8.1f} small GET/s")


if __name__ == "__main__":
    main()
