"""The emulator under abuse (issue 7 §5): descriptor exhaustion, session expiry, a full disk, and HTTP
oddities (deep JSON, raw UTF-8 in the request line, unsupported transfer codings, downloads)."""

from __future__ import annotations

import errno
import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_cos.emulator import DEMO, CosEmulator
from airflow_provider_cos.protocol.errors import CosSessionError
from airflow_provider_cos.protocol.multipart import encode_form
from airflow_provider_cos.protocol.xmloperations import XmlRequest
from tests.emulator.client import Client, payload, raw_http, sha1
from tests.emulator.xmlclient import XmlClient
from tests.support.emulator_cli import emulator_command

KiB = 1024


# ---------------------------------------------------------------------------------- descriptors
def _limit_fds() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


@pytest.fixture
def low_fd_emulator(tmp_path: Path) -> Iterator[str]:
    """An emulator in a subprocess whose descriptor limit is 64."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_cos.emulator", "--port", "0", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_limit_fds,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    try:
        assert line.startswith("http://"), proc.stderr.read() if proc.stderr else line
        yield line
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_abandoned_sessions_hold_no_descriptor(low_fd_emulator: str) -> None:
    client = Client(low_fd_emulator, "v2")
    data = payload(128 * KiB)
    for i in range(150):  # well above the limit of 64: each had a slice received, then was abandoned
        res = client.init(f"/abandoned-{i}.bin", data, 64 * KiB)
        client.put_slice(f"/abandoned-{i}.bin", res.session, 0, data[: 64 * KiB])
    client.upload_slices("/after.bin", data, 64 * KiB)
    assert client.stat("/after.bin").filesize == len(data)
    stats = requests.get(f"{low_fd_emulator}/_emulator/stats", timeout=10).json()["data"]
    assert stats["internal_errors"] == 0


# ---------------------------------------------------------------------------------- expiry
class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_sessions_expire_after_the_configured_time(emulator_factory: Any) -> None:
    clock = FakeClock()
    emu: CosEmulator = emulator_factory(clock=clock)
    emu.settings.session_ttl = 3600
    client = Client(emu.url, "v2")
    data = payload(128 * KiB)
    old = client.init("/old.bin", data, 64 * KiB)
    client.put_slice("/old.bin", old.session, 0, data[: 64 * KiB])
    clock.now += 1800
    live = client.init("/live.bin", data, 64 * KiB)
    client.put_slice("/live.bin", live.session, 0, data[: 64 * KiB])  # activity keeps a session alive
    sessions_dir = emu.data_dir / "buckets" / f"{DEMO.appid}-{DEMO.bucket}" / "sessions"
    assert len(list(sessions_dir.iterdir())) == 2
    clock.now += 1801  # /old.bin idle for 3601 s, /live.bin for 1801 s
    with pytest.raises(CosSessionError):
        client.put_slice("/old.bin", old.session, 64 * KiB, data[64 * KiB :])
    assert len(list(sessions_dir.iterdir())) == 1  # the expired session's data is gone
    client.put_slice("/live.bin", live.session, 64 * KiB, data[64 * KiB :])
    client.finish("/live.bin", live.session, len(data), sha1(data))
    assert client.stat("/live.bin").filesize == len(data)


def test_session_ttl_is_a_cli_flag(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        emulator_command(tmp_path, "--session-ttl", "123"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        url = proc.stdout.readline().strip()
        settings = requests.get(f"{url}/_emulator/settings", timeout=10).json()["data"]
        assert settings["session_ttl"] == 123
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ---------------------------------------------------------------------------------- full disk
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode:
        pytest.skip(
            f"cannot mount a tmpfs here ({done.stderr.decode().strip()}); test_enospc_injected covers the same answer"
        )
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _leftovers(data_dir: Path) -> list[str]:
    out = [p.name for p in (data_dir / "tmp").iterdir()]
    out += [p.name for p in data_dir.glob("buckets/*/objects/.*.tmp")]
    out += [p.name for p in data_dir.glob("buckets/*/blobs/*")]
    return out


def _assert_storage_full(resp: requests.Response) -> None:
    assert resp.status_code == 507, (resp.status_code, resp.text)
    body = resp.json()
    assert body["code"] == -4023 and body["message"] == "ERROR_INSUFFICIENT_STORAGE", body


def test_full_disk_is_answered_as_such_and_cleaned_up(emulator_factory: Any, small_disk: Path) -> None:
    emu: CosEmulator = emulator_factory(data_dir=small_disk)
    client = Client(emu.url, "v2")
    big = payload(3 << 20)
    resp = client.send(client.d.prepare_upload("/big.bin", len(big)), big)  # simple upload: spooled
    _assert_storage_full(resp)
    assert _leftovers(small_disk) == []
    res = client.init("/sliced.bin", big, 1 << 20)  # a slice straight into the (sparse) data file
    ok = client.send(
        client.d.prepare_slice_data("/sliced.bin", session=res.session, offset=0, length=1 << 20), big[: 1 << 20]
    )
    assert ok.status_code == 200, ok.text
    resp = client.send(
        client.d.prepare_slice_data("/sliced.bin", session=res.session, offset=1 << 20, length=1 << 20),
        big[1 << 20 : 2 << 20],
    )
    _assert_storage_full(resp)
    assert client.stat("/").is_folder  # still serving
    xml = XmlClient(emu.url)  # the XML API answers the same condition with its own <Error>
    resp = xml.send(XmlRequest("PutObject", "PUT", "big-xml.bin", data_len=len(big)), big)
    assert resp.status_code == 507 and b"<Code>InsufficientStorage</Code>" in resp.content, resp.content
    assert _leftovers(small_disk) == []
    client.delete("/sliced.bin")  # aborting the upload frees its space
    client.upload("/small.bin", b"x" * 1000)
    assert client.stat("/small.bin").filesize == 1000
    assert emu.stats.internal_errors == 0


def test_enospc_injected(emulator: CosEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same answer where no tmpfs can be mounted: ENOSPC raised by the storage's writes."""
    from airflow_provider_cos.emulator import storage

    real_pwrite = os.pwrite

    def full_pwrite(fd: int, data: Any, offset: int) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    client = Client(emulator.url, "v2")
    data = payload(128 * KiB)
    res = client.init("/f.bin", data, 64 * KiB)
    monkeypatch.setattr(storage, "_pwrite", full_pwrite)
    resp = client.send(
        client.d.prepare_slice_data("/f.bin", session=res.session, offset=0, length=64 * KiB), data[: 64 * KiB]
    )
    _assert_storage_full(resp)
    monkeypatch.setattr(storage, "_pwrite", real_pwrite)
    client.put_slice("/f.bin", res.session, 0, data[: 64 * KiB])  # the slice can be sent again
    assert emulator.stats.internal_errors == 0


# ---------------------------------------------------------------------------------- HTTP oddities
def _status_and_body(answer: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def _signed_post(url_path: str, body: bytes, content_type: str, extra: bytes = b"") -> bytes:
    sig = Client("http://127.0.0.1:1", "v2").signer.multi(DEMO.appid, DEMO.bucket)
    return (
        (
            f"POST {url_path} HTTP/1.1\r\nHost: x\r\nAuthorization: {sig}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n"
        ).encode("ascii")
        + extra
        + b"\r\n"
        + body
    )


def test_deeply_nested_json_is_a_bad_request(emulator: CosEmulator) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    base = f"/files/v2/{DEMO.appid}/{DEMO.bucket}/x.bin"
    status, env = _status_and_body(
        raw_http(emulator.url, _signed_post(base, b'{"a":' + body + b"}", "application/json"))
    )
    assert status == 400 and env["code"] == -61, env
    status, env = _status_and_body(
        raw_http(emulator.url, _signed_post("/_emulator/settings", body, "application/json"))
    )
    assert status == 400, env
    assert emulator.stats.internal_errors == 0


def test_raw_utf8_in_the_request_line_is_utf8(emulator: CosEmulator) -> None:
    client = Client(emulator.url, "v2")
    form = encode_form([("op", "upload"), ("insertOnly", "0")], "filecontent")
    target = f"/files/v2/{DEMO.appid}/{DEMO.bucket}/".encode() + "中文 ü.txt".replace(" ", "%20").encode()
    request = _signed_post("PLACEHOLDER", form.body(b"hello"), form.content_type).replace(b"PLACEHOLDER", target)
    status, env = _status_and_body(raw_http(emulator.url, request))
    assert status == 200, env
    assert client.stat("/中文 ü.txt").filesize == 5
    assert [e.name for e in client.list("/").infos] == ["中文 ü.txt"]


def test_unsupported_transfer_coding_is_refused(emulator: CosEmulator) -> None:
    client = Client(emulator.url, "v2")
    form = encode_form([("op", "upload")], "filecontent")
    body = form.body(b"hello")
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    base = f"/files/v2/{DEMO.appid}/{DEMO.bucket}/gz.bin"
    sig = client.signer.multi(DEMO.appid, DEMO.bucket)
    for coding in ("gzip, chunked", "deflate", "chunked, chunked"):
        request = (
            f"POST {base} HTTP/1.1\r\nHost: x\r\nAuthorization: {sig}\r\nContent-Type: {form.content_type}"
            f"\r\nTransfer-Encoding: {coding}\r\n\r\n"
        ).encode() + chunked
        answer = raw_http(emulator.url, request)
        status, env = _status_and_body(answer)
        assert status == 501 and "transfer-encoding" in env["data"]["detail"].lower(), (coding, env)
        assert b"Connection: close" in answer
    assert client.list("/").infos == ()
