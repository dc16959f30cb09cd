"""JSON-generation downloads from the emulator: GET of the object URL, ranges, ``sign``, errors, faults."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from airflow_provider_cos.emulator import DEMO, CosEmulator, FaultRule
from airflow_provider_cos.protocol.errors import CosAuthError, CosNotFoundError
from airflow_provider_cos.protocol.paths import encode_path
from tests.emulator.client import Client, payload


def _download_sign(client: Client, path: str) -> str:
    return client.signer.download(DEMO.appid, DEMO.bucket, encode_path(path))


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_whole_object_and_ranges(emulator: CosEmulator, version: str) -> None:
    client = Client(emulator.url, version)
    data = payload(300_000)
    client.upload("/obj.bin", data)
    url = client.target.url("/obj.bin")
    sign = quote(_download_sign(client, "/obj.bin"), safe="")
    whole = client.http.get(f"{url}?sign={sign}", timeout=10)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["Accept-Ranges"] == "bytes"
    part = client.http.get(f"{url}?sign={sign}", headers={"Range": "bytes=1000-1999"}, timeout=10)
    assert part.status_code == 206 and part.content == data[1000:2000]
    assert part.headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"
    tail = client.http.get(f"{url}?sign={sign}", headers={"Range": "bytes=-10"}, timeout=10)
    assert tail.status_code == 206 and tail.content == data[-10:]
    # the Authorization header with an ordinary multi-effect signature is accepted too
    header = client.http.get(
        url, headers={"Authorization": client.signer.multi(DEMO.appid, DEMO.bucket), "Range": "bytes=0-0"}, timeout=10
    )
    assert header.status_code == 206 and header.content == data[:1]


def test_dialect_download_step_round_trip(emulator: CosEmulator) -> None:
    client = Client(emulator.url, "v2")
    data = payload(5000, seed=3)
    client.upload("/r.bin", data)
    req = client.d.prepare_download("/r.bin", start=4000, length=1000)
    resp = client.send(req, signature=_download_sign(client, "/r.bin"))
    assert "sign=" in resp.request.url and "Authorization" not in resp.request.headers
    assert (
        client.d.process_download(resp.status_code, resp.content, path="/r.bin", start=4000, length=1000) == data[4000:]
    )


def test_range_past_the_end_is_416(emulator: CosEmulator) -> None:
    client = Client(emulator.url, "v2")
    client.upload("/small.bin", b"abc")
    resp = client.http.get(
        client.target.url("/small.bin"),
        timeout=10,
        headers={"Range": "bytes=3-9", "Authorization": client.signer.multi(DEMO.appid, DEMO.bucket)},
    )
    assert resp.status_code == 416
    assert resp.json()["code"] == -61


def test_missing_object_is_a_404_envelope(emulator: CosEmulator) -> None:
    client = Client(emulator.url, "v2")
    req = client.d.prepare_download("/nope.bin", start=0, length=10)
    resp = client.send(req, signature=_download_sign(client, "/nope.bin"))
    assert resp.status_code == 404 and resp.json()["code"] == -166
    with pytest.raises(CosNotFoundError):
        client.d.process_download(resp.status_code, resp.content, path="/nope.bin", start=0, length=10)


def test_signature_is_checked(emulator: CosEmulator) -> None:
    client = Client(emulator.url, "v2")
    client.upload("/secret.bin", b"top secret")
    url = client.target.url("/secret.bin")
    assert client.http.get(url, timeout=10).json()["code"] != 0  # unsigned
    other = _download_sign(client, "/other.bin")  # bound to another object
    resp = client.http.get(f"{url}?sign={quote(other, safe='')}", timeout=10)
    assert resp.json()["code"] != 0 and resp.content != b"top secret"
    wrong = Client(emulator.url, "v2")
    wrong.signer = type(client.signer)(type(client.signer._credentials)(DEMO.secret_id, "x" * 32))
    resp = wrong.http.get(f"{url}?sign={quote(_download_sign(wrong, '/secret.bin'), safe='')}", timeout=10)
    assert resp.status_code in (401, 403) or resp.json()["code"] != 0
    req = client.d.prepare_download("/secret.bin", start=0, length=3)
    with pytest.raises(CosAuthError):
        r = wrong.send(req, signature=_download_sign(wrong, "/secret.bin"))
        client.d.process_download(r.status_code, r.content, path="/secret.bin", start=0, length=3)


def test_fault_rules_target_the_download_op(emulator: CosEmulator) -> None:
    client = Client(emulator.url, "v2")
    client.upload("/f.bin", b"0123456789")
    emulator.add_fault(FaultRule(op="download", status=503))
    req = client.d.prepare_download("/f.bin", start=0, length=10)
    first = client.send(req, signature=_download_sign(client, "/f.bin"))
    assert first.status_code == 503
    second = client.send(req, signature=_download_sign(client, "/f.bin"))
    assert second.status_code == 206 and second.content == b"0123456789"
    assert emulator.stats.faults_fired == 1
