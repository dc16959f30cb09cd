"""State on disk survives a restart: objects, folders and open sessions in both dialects."""

from __future__ import annotations

import pytest

from airflow_provider_cos.emulator import CosEmulator
from airflow_provider_cos.protocol.messages import SliceSession
from tests.emulator.client import Client, MiB, payload, sha1, stored_bytes


def test_objects_survive_restart_same_port(emulator: CosEmulator) -> None:
    client = Client(emulator.url, "v2")
    client.mkdir("/keep/")
    client.upload("/keep/a.txt", b"kept", biz_attr="x")
    port = emulator.port
    emulator.stop()
    emulator.start()
    assert emulator.port == port
    client = Client(emulator.url, "v2")  # old keep-alive connections were closed
    info = client.stat("/keep/a.txt")
    assert (info.filesize, info.sha, info.biz_attr) == (4, sha1(b"kept"), "x")
    assert client.stat("/keep/").is_folder


def test_restart_on_new_object_with_same_dir(emulator: CosEmulator, emulator_factory) -> None:  # type: ignore[no-untyped-def]
    Client(emulator.url, "v1").upload("/z.txt", b"z")
    emulator.stop()
    second = emulator_factory(data_dir=emulator.data_dir)
    assert Client(second.url, "v1").stat("/z.txt").filesize == 1


def test_v1_resume_after_restart(emulator: CosEmulator) -> None:
    data = payload(3 * MiB + 3, seed=5)
    client = Client(emulator.url, "v1")
    res = client.init("/v1.bin", data)
    client.put_slice("/v1.bin", res.session, 0, data[:MiB])
    client.put_slice("/v1.bin", res.session, 2 * MiB, data[2 * MiB : 3 * MiB])
    emulator.stop()
    emulator.start()
    client = Client(emulator.url, "v1")
    assert client.stat("/v1.bin").filelen == 2 * MiB
    again = client.init("/v1.bin", data, session=res.session)
    assert isinstance(again, SliceSession) and again.offset == MiB
    client.put_slice("/v1.bin", res.session, MiB, data[MiB : 2 * MiB])
    ack = client.put_slice("/v1.bin", res.session, 3 * MiB, data[3 * MiB :])
    assert ack.urls is not None
    assert stored_bytes(emulator.data_dir, "/v1.bin") == data


@pytest.mark.parametrize("finish_after_restart", [True, False])
def test_v2_resume_after_restart(emulator: CosEmulator, finish_after_restart: bool) -> None:
    data = payload(2 * MiB + 9, seed=6)
    client = Client(emulator.url, "v2")
    res = client.init("/v2.bin", data)
    client.put_slice("/v2.bin", res.session, MiB, data[MiB : 2 * MiB])
    if not finish_after_restart:
        client.put_slice("/v2.bin", res.session, 0, data[:MiB])
        client.put_slice("/v2.bin", res.session, 2 * MiB, data[2 * MiB :])
    emulator.stop()
    emulator.start()
    client = Client(emulator.url, "v2")
    listed = client.slice_list("/v2.bin")
    assert isinstance(listed, SliceSession) and listed.session == res.session
    have = {p.offset for p in listed.received}
    for off in (0, MiB, 2 * MiB):
        if off not in have:
            client.put_slice("/v2.bin", res.session, off, data[off : off + MiB])
    client.finish("/v2.bin", res.session, len(data), sha1(data))
    assert stored_bytes(emulator.data_dir, "/v2.bin") == data


def test_no_half_written_objects_or_spool_leftovers(emulator: CosEmulator) -> None:
    client = Client(emulator.url, "v2")
    client.upload_slices("/whole.bin", payload(2 * MiB + 1))
    tmp = emulator.data_dir / "tmp"
    assert [p.name for p in tmp.iterdir() if p.is_file()] == []
    blobs = emulator.data_dir / "buckets" / f"{client.bucket.appid}-{client.bucket.bucket}" / "blobs"
    assert len(list(blobs.iterdir())) == 1
