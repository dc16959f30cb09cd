"""The emulator's ingest of XML UploadPart bodies vs JSON (v2) slices, one run, same file, same
emulator (its own process), pre-built signed bodies sent by a bare ``requests`` pool (never by pytest).

    uv run python benchmarks/xml_ingest.py --size 256M --repeat 3

Prints, best of ``--repeat``: v2 slices (incl. finish) MB/s, XML UploadPart phase MB/s, then the
Complete and the HeadObject that follows it (ms). See BENCHMARKS.md, "xml".
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from airflow_provider_cos.emulator import DEMO
from airflow_provider_cos.protocol.messages import CosTarget
from airflow_provider_cos.protocol.xmlmessages import CompletePart
from airflow_provider_cos.protocol.xmloperations import XML, encode_xml_request
from airflow_provider_cos.protocol.xmlsigning import XmlCredentials, XmlSigner
from airflow_provider_cos.transfer.xmlcalls import xml_target

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_upload import Emulator, bare_ceiling, client_for, parse_size, session_pool

MiB = 1024 * 1024
WORKERS = 4


def xml_parts(url: str, path: Path, key: str) -> tuple[float, float, float]:
    """Seconds of the UploadPart phase (pre-built signed bodies), of the Complete, of the HeadObject."""
    target = xml_target(CosTarget(url, "xml", DEMO.appid, DEMO.bucket))
    signer = XmlSigner(XmlCredentials(DEMO.secret_id, DEMO.secret_key))
    session = session_pool(WORKERS)

    def send(request, data=None):  # type: ignore[no-untyped-def]
        http = encode_xml_request(target, request, signer)
        return session.request(http.method, http.url, headers=dict(http.headers), data=data or http.body)

    answer = send(XML.prepare_initiate(key))
    upload_id = XML.process_initiate(answer.status_code, list(answer.headers.items()), answer.content).upload_id
    size = path.stat().st_size
    prepared = []
    with open(path, "rb") as fh:
        for number, offset in enumerate(range(0, size, MiB), start=1):
            data = os.pread(fh.fileno(), MiB, offset)
            req = XML.prepare_upload_part(key, upload_id=upload_id, part_number=number, data_len=len(data))
            prepared.append((number, encode_xml_request(target, req, signer), data))

    def put(item):  # type: ignore[no-untyped-def]
        number, http, data = item
        r = session.request(http.method, http.url, headers=dict(http.headers), data=data)
        assert r.status_code == 200, r.text[:200]
        return CompletePart(number, r.headers["ETag"])

    t0 = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        done = list(pool.map(put, prepared))
    t1 = time.perf_counter()
    answer = send(XML.prepare_complete(key, upload_id=upload_id, parts=done))
    assert answer.status_code == 200 and b"<Error>" not in answer.content, answer.text[:300]
    t2 = time.perf_counter()
    head = send(XML.prepare_head_object(key))
    assert head.status_code == 200 and head.headers.get("x-cos-hash-crc64ecma"), head.headers
    t3 = time.perf_counter()
    send(XML.prepare_delete_object(key))  # else the next v2 upload of the same content is instant
    session.close()
    return t1 - t0, t2 - t1, t3 - t2


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="256M")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    size = parse_size(args.size)
    scratch = Path(tempfile.mkdtemp(prefix="cos-xml-ingest-"))
    src = scratch / "src.bin"
    with open(src, "wb") as fh:
        for _ in range(size // MiB):
            fh.write(os.urandom(MiB))
    emu = Emulator(scratch / "emu")
    try:
        client = client_for(emu.url, "v2")
        json_s, parts_s, complete_s, head_s = [], [], [], []
        for i in range(args.repeat):
            json_s.append(bare_ceiling(emu.url, "v2", src, f"/json-{i}.bin", WORKERS, MiB, client))
            p, c, h = xml_parts(emu.url, src, f"xml-{i}.bin")
            parts_s.append(p)
            complete_s.append(c)
            head_s.append(h)
        client.close()
        mb = size / 1e6
        print(f"{size // MiB} MiB, 1 MiB parts/slices, {WORKERS} in flight, load {os.getloadavg()[0]:.2f}")
        print(
            f"  json v2 slices (incl. finish): best {mb / min(json_s):6.0f} MB/s  (all: "
            + ", ".join(f"{mb / t:.0f}" for t in json_s)
            + ")"
        )
        print(
            f"  xml UploadPart phase:          best {mb / min(parts_s):6.0f} MB/s  (all: "
            + ", ".join(f"{mb / t:.0f}" for t in parts_s)
            + ")"
        )
        print(
            f"  xml Complete: best {min(complete_s) * 1000:.0f} ms; HeadObject after it: best "
            f"{min(head_s) * 1000:.1f} ms (all: " + ", ".join(f"{t * 1000:.1f}" for t in head_s) + ")"
        )
        print(f"  ratio json / xml parts: {min(parts_s) / min(json_s):.2f}")
    finally:
        emu.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
