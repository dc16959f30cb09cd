"""The slice data path: one sparse data file per session, pwrite at the offset, rename on completion,
running SHA-1; and what ``stat`` shows while an upload is open."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from airflow_provider_cos.emulator import CosEmulator
from airflow_provider_cos.protocol.errors import CosIntegrityError
from airflow_provider_cos.protocol.messages import SliceSession, encode_request
from tests.emulator.client import Client, MiB, payload, sha1, stored_bytes


@pytest.fixture
def v2(emulator: CosEmulator) -> Client:
    return Client(emulator.url, "v2")


def _bucket_root(emulator: CosEmulator) -> Path:
    b = emulator.bucket
    return emulator.data_dir / "buckets" / f"{b.appid}-{b.bucket}"


def _session_dirs(emulator: CosEmulator) -> list[Path]:
    return [p for p in (_bucket_root(emulator) / "sessions").iterdir() if p.is_dir()]


def _listed(client: Client, path: str) -> list[tuple[int, int]]:
    listed = client.slice_list(path)
    assert isinstance(listed, SliceSession)
    return [(p.offset, p.datalen) for p in listed.received]


def _send_partial_slice(client: Client, path: str, session: str, offset: int, chunk: bytes, keep: int) -> None:
    """Send a slice request whose body stops after ``keep`` bytes of the file part, then close."""
    req = client.d.prepare_slice_data(path, session=session, offset=offset, length=len(chunk))
    http = encode_request(client.target, req, client.sign_for(req), chunk)
    body = b"".join(bytes(x) for x in http.body) if not isinstance(http.body, (bytes, bytearray)) else bytes(http.body)
    start = body.index(chunk[:64])
    parts = urlsplit(http.url)
    head = f"POST {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in http.headers.items() if k.lower() != "content-length")
    head += f"Content-Length: {len(body)}\r\n\r\n"
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1") + body[: start + keep])
        _end_and_wait_for_close(sock)


def _end_and_wait_for_close(sock: socket.socket) -> None:
    """End the request here (half-close) and wait until the server closes the connection, i.e. until
    its handler is done with the request, what it got written (an event, not a sleep)."""
    sock.shutdown(socket.SHUT_WR)
    with contextlib.suppress(ConnectionResetError):
        while sock.recv(65536):
            pass


def test_stat_is_never_complete_before_finish(v2: Client) -> None:
    data = payload(2 * MiB + 5, seed=71)
    res = v2.init("/s.bin", data)
    for off in (0, MiB, 2 * MiB):
        v2.put_slice("/s.bin", res.session, off, data[off : off + MiB])
    info = v2.stat("/s.bin")
    assert info.filesize == len(data) and info.filelen == len(data) - 1 and not info.complete
    assert [(i.name, i.filelen) for i in v2.list("/").infos] == [("s.bin", len(data) - 1)]
    v2.finish("/s.bin", res.session, len(data), sha1(data))
    info = v2.stat("/s.bin")
    assert info.filelen == info.filesize == len(data) and info.complete


def test_stat_of_empty_unfinished_upload(v2: Client) -> None:
    res = v2.init("/e.bin", b"")
    v2.put_slice("/e.bin", res.session, 0, b"")
    info = v2.stat("/e.bin")
    assert info.filesize == 0 and info.filelen == -1 and not info.complete
    v2.finish("/e.bin", res.session, 0, sha1(b""))
    info = v2.stat("/e.bin")
    assert info.filesize == info.filelen == 0 and info.complete


def test_open_upload_over_existing_object_stats_the_object(v2: Client, emulator: CosEmulator) -> None:
    old = payload(1000, seed=1)
    v2.upload("/o.bin", old)
    new = payload(2 * MiB, seed=2)
    res = v2.init("/o.bin", new)
    v2.put_slice("/o.bin", res.session, 0, new[:MiB])
    v2.put_slice("/o.bin", res.session, MiB, new[MiB:])
    info = v2.stat("/o.bin")
    assert (info.filesize, info.filelen, info.sha) == (1000, 1000, sha1(old)) and info.complete
    assert [(i.name, i.filesize) for i in v2.list("/").infos] == [("o.bin", 1000)]
    v2.finish("/o.bin", res.session, len(new), sha1(new))
    info = v2.stat("/o.bin")
    assert (info.filesize, info.filelen, info.sha) == (len(new), len(new), sha1(new))
    assert stored_bytes(emulator.data_dir, "/o.bin") == new


def test_completion_renames_the_data_file(v2: Client, emulator: CosEmulator) -> None:
    data = payload(3 * MiB, seed=3)
    res = v2.init("/r.bin", data)
    (sdir,) = _session_dirs(emulator)
    inode = (sdir / "data").stat().st_ino
    assert (sdir / "data").stat().st_size == len(data)  # created with the declared size
    for off in (2 * MiB, 0, MiB):  # out of order
        v2.put_slice("/r.bin", res.session, off, data[off : off + MiB])
    v2.finish("/r.bin", res.session, len(data), sha1(data))
    (blob,) = (_bucket_root(emulator) / "blobs").iterdir()
    assert blob.stat().st_ino == inode and blob.read_bytes() == data
    assert _session_dirs(emulator) == []


def test_slice_dropped_mid_body_is_not_received(v2: Client, emulator: CosEmulator) -> None:
    data = payload(2 * MiB, seed=4)
    res = v2.init("/d.bin", data)
    _send_partial_slice(v2, "/d.bin", res.session, 0, data[:MiB], MiB // 2)
    assert _listed(v2, "/d.bin") == []
    v2.put_slice("/d.bin", res.session, 0, data[:MiB])
    v2.put_slice("/d.bin", res.session, MiB, data[MiB:])
    assert _listed(v2, "/d.bin") == [(0, MiB), (MiB, MiB)]
    # a re-send of a received slice that breaks off un-receives it (its bytes were being overwritten)
    garbage = payload(MiB, seed=99)
    _send_partial_slice(v2, "/d.bin", res.session, MiB, garbage, MiB // 3)
    assert _listed(v2, "/d.bin") == [(0, MiB)]
    v2.put_slice("/d.bin", res.session, MiB, data[MiB:])
    v2.finish("/d.bin", res.session, len(data), sha1(data))
    assert stored_bytes(emulator.data_dir, "/d.bin") == data


def test_half_written_slice_not_counted_after_restart(emulator: CosEmulator) -> None:
    data = payload(3 * MiB, seed=5)
    client = Client(emulator.url, "v2")
    res = client.init("/h.bin", data)
    client.put_slice("/h.bin", res.session, 0, data[:MiB])
    client.put_slice("/h.bin", res.session, MiB, data[MiB : 2 * MiB])
    _send_partial_slice(client, "/h.bin", res.session, 2 * MiB, data[2 * MiB :], 1000)
    _send_partial_slice(client, "/h.bin", res.session, MiB, payload(MiB, seed=98), 1000)
    emulator.stop()
    emulator.start()
    client = Client(emulator.url, "v2")
    assert _listed(client, "/h.bin") == [(0, MiB)]
    (sdir,) = _session_dirs(emulator)
    journal = (sdir / "received").read_text()
    assert journal == f"+0 {MiB}\n+{MiB} {MiB}\n-{MiB}\n"
    for off in (MiB, 2 * MiB):
        client.put_slice("/h.bin", res.session, off, data[off : off + MiB])
    client.finish("/h.bin", res.session, len(data), sha1(data))
    assert stored_bytes(emulator.data_dir, "/h.bin") == data


def test_resent_slice_below_hashed_prefix_rehashes(v2: Client, emulator: CosEmulator) -> None:
    data = payload(4 * MiB, seed=6)
    res = v2.init("/x.bin", data)  # with uploadparts: chaining states are checked at finish
    for off in range(0, len(data), MiB):
        v2.put_slice("/x.bin", res.session, off, data[off : off + MiB])
    v2.put_slice("/x.bin", res.session, MiB, payload(MiB, seed=7))  # wrong content replaces slice 1
    with pytest.raises(CosIntegrityError):
        v2.finish("/x.bin", res.session, len(data), sha1(data))
    v2.put_slice("/x.bin", res.session, MiB, data[MiB : 2 * MiB])  # repaired
    v2.finish("/x.bin", res.session, len(data), sha1(data))
    assert stored_bytes(emulator.data_dir, "/x.bin") == data


def test_concurrent_slices_and_duplicates(emulator: CosEmulator) -> None:
    data = payload(24 * MiB + 77, seed=8)
    client = Client(emulator.url, "v2")
    res = client.init("/c.bin", data)
    offsets = list(range(0, len(data), MiB))
    offsets = offsets[::-1] + offsets[::3]  # out of order, some sent twice
    errors: list[BaseException] = []

    def worker(mine: list[int]) -> None:
        c = Client(emulator.url, "v2")
        try:
            for off in mine:
                c.put_slice("/c.bin", res.session, off, data[off : off + MiB])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(offsets[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    client.finish("/c.bin", res.session, len(data), sha1(data))
    assert stored_bytes(emulator.data_dir, "/c.bin") == data


def test_instant_upload_links_the_blob(v2: Client, emulator: CosEmulator) -> None:
    data = payload(MiB + 3, seed=9)
    v2.upload_slices("/first.bin", data)
    v2.upload_slices("/second.bin", data)  # 秒传
    blobs = list((_bucket_root(emulator) / "blobs").iterdir())
    assert len({b.stat().st_ino for b in blobs}) == 1 and all(b.stat().st_nlink == 2 for b in blobs)
    metas = [json.loads(p.read_text()) for p in (_bucket_root(emulator) / "objects").glob("*.json")]
    assert sorted(m["path"] for m in metas) == ["/first.bin", "/second.bin"]
    assert os.path.exists(_bucket_root(emulator) / "blobs" / metas[0]["blob"])
