"""Fault injection through the Python API and the control endpoints, with a real socket."""

from __future__ import annotations

import json
import time

import pytest
import requests

from airflow_provider_cos.emulator import CosEmulator, FaultRule
from airflow_provider_cos.protocol.errors import (
    CosProtocolError,
    CosServerError,
    CosThrottledError,
    CosUnfinishedUploadError,
)
from tests.emulator.client import Client, MiB, payload, sha1, stored_bytes


@pytest.fixture
def v2(emulator: CosEmulator) -> Client:
    return Client(emulator.url, "v2")


def _session(v2: Client, data: bytes, path: str = "/f.bin") -> str:
    res = v2.init(path, data)
    return res.session  # type: ignore[no-any-return]


def test_status_with_envelope_then_recovers(v2: Client, emulator: CosEmulator) -> None:
    data = payload(2 * MiB)
    sid = _session(v2, data)
    emulator.add_fault(FaultRule(op="upload_slice_data", times=2, status=503))
    for _ in range(2):
        resp = v2.send(v2.d.prepare_slice_data("/f.bin", session=sid, offset=0, length=MiB), data[:MiB])
        assert resp.status_code == 503 and resp.json()["code"] == -181
    assert v2.stat("/f.bin").filelen == 0  # the faulted requests had no effect
    v2.put_slice("/f.bin", sid, 0, data[:MiB])
    assert emulator.stats.faults_fired == 2 and emulator.faults == []


def test_status_plain_text(v2: Client, emulator: CosEmulator) -> None:
    emulator.add_fault(FaultRule(op="stat", status=502, plain=True))
    resp = v2.send(v2.d.prepare_stat("/x"))
    assert resp.status_code == 502 and resp.headers["Content-Type"].startswith("text/plain")
    with pytest.raises(CosServerError):
        v2.d.process_stat(resp.status_code, resp.content, path="/x")


@pytest.mark.parametrize(
    ("code", "exc"), [(-71, CosThrottledError), (-4019, CosUnfinishedUploadError), (-181, CosServerError)]
)
def test_cos_code(v2: Client, emulator: CosEmulator, code: int, exc: type[Exception]) -> None:
    emulator.add_fault(FaultRule(op="upload", code=code))
    with pytest.raises(exc) as err:
        v2.upload("/c.txt", b"c")
    assert err.value.code == code  # type: ignore[attr-defined]
    v2.upload("/c.txt", b"c")


def test_delay(v2: Client, emulator: CosEmulator) -> None:
    emulator.add_fault(FaultRule(op="stat", delay=0.4))
    v2.upload("/d.txt", b"d")
    started = time.monotonic()
    assert v2.stat("/d.txt").filesize == 1  # pure delay: normal answer
    assert time.monotonic() - started >= 0.4


def test_drop_mid_body(v2: Client, emulator: CosEmulator) -> None:
    data = payload(3 * MiB)
    sid = _session(v2, data)
    emulator.add_fault(FaultRule(op="upload_slice_data", drop=True, after_bytes=300_000))
    with pytest.raises(requests.exceptions.ConnectionError):
        v2.send(v2.d.prepare_slice_data("/f.bin", session=sid, offset=0, length=MiB), data[:MiB])
    assert v2.stat("/f.bin").filelen == 0
    for off in range(0, len(data), MiB):
        v2.put_slice("/f.bin", sid, off, data[off : off + MiB])
    v2.finish("/f.bin", sid, len(data), sha1(data))
    assert stored_bytes(emulator.data_dir, "/f.bin") == data


def test_drop_for_bodyless_request(v2: Client, emulator: CosEmulator) -> None:
    emulator.add_fault(FaultRule(op="stat", drop=True))
    with pytest.raises(requests.exceptions.ConnectionError):
        v2.send(v2.d.prepare_stat("/x"))
    assert v2.send(v2.d.prepare_stat("/x")).json()["code"] == -166


def test_garbage_and_empty(v2: Client, emulator: CosEmulator) -> None:
    emulator.add_fault(FaultRule(op="upload", garbage=True))
    emulator.add_fault(FaultRule(op="upload", empty=True))
    resp = v2.send(v2.d.prepare_upload("/g.txt", 1), b"g")
    assert resp.status_code == 200
    with pytest.raises(CosProtocolError):
        v2.d.process_upload(resp.status_code, resp.content)
    resp = v2.send(v2.d.prepare_upload("/g.txt", 1), b"g")
    assert resp.status_code == 200 and resp.content == b""
    with pytest.raises(CosProtocolError):
        v2.d.process_upload(resp.status_code, resp.content)
    assert stored_bytes(emulator.data_dir, "/g.txt") is None


def test_path_filter_and_v1_alias(emulator: CosEmulator) -> None:
    v1 = Client(emulator.url, "v1")
    data = payload(2 * MiB)
    emulator.add_fault(FaultRule(op="upload_slice_data", path="/other/*", code=-71))
    emulator.add_fault(FaultRule(op="upload_slice_data", path="/t*.bin", code=-71))
    res = v1.init("/t.bin", data)  # init is not matched by the data alias
    with pytest.raises(CosThrottledError):
        v1.put_slice("/t.bin", res.session, 0, data[:MiB])
    v1.put_slice("/t.bin", res.session, 0, data[:MiB])
    assert len(emulator.faults) == 1
    emulator.add_fault(FaultRule(op="upload_slice_init", code=-71))
    with pytest.raises(CosThrottledError):
        v1.init("/t.bin", data, session=res.session)
    assert v1.init("/t.bin", data, session=res.session).offset == MiB
    emulator.clear_faults()
    assert emulator.faults == []


def test_times_none_is_forever(v2: Client, emulator: CosEmulator) -> None:
    emulator.add_fault(FaultRule(op="stat", code=-71, times=None))
    for _ in range(3):
        assert v2.send(v2.d.prepare_stat("/x")).json()["code"] == -71
    emulator.clear_faults()
    assert v2.send(v2.d.prepare_stat("/x")).json()["code"] == -166


def test_control_endpoints(v2: Client, emulator: CosEmulator) -> None:
    base = emulator.url + "/_emulator"
    resp = requests.post(base + "/faults", data=json.dumps({"op": "stat", "status": 500, "times": 1}), timeout=10)
    assert resp.json()["code"] == 0 and len(resp.json()["data"]["faults"]) == 1
    assert v2.send(v2.d.prepare_stat("/x")).status_code == 500
    requests.post(base + "/faults", data=json.dumps([{"op": "stat", "code": -71, "times": 5}]), timeout=10)
    assert requests.delete(base + "/faults", timeout=10).json()["code"] == 0
    assert emulator.faults == []
    bad = requests.post(base + "/faults", data=json.dumps({"nope": 1}), timeout=10)
    assert bad.status_code == 400
    bad = requests.post(base + "/faults", data="{not json", timeout=10)
    assert bad.status_code == 400
    resp = requests.post(base + "/settings", data=json.dumps({"slice_size": 524288, "serial_upload": True}), timeout=10)
    assert resp.json()["data"]["slice_size"] == 524288
    res = v2.init("/s.bin", payload(2 * MiB))
    assert res.slice_size == 524288 and res.serial_upload
    stats = requests.get(base + "/stats", timeout=10).json()["data"]
    assert stats["requests"]["stat"] == 1 and stats["requests"]["upload_slice_init"] == 1
    assert stats["faults_fired"] == 1
    assert requests.get(base + "/nothing", timeout=10).status_code == 404
