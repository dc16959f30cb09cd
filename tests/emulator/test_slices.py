"""Slice upload state machines: v1 ``upload_slice`` and v2 init/data/finish/list."""

from __future__ import annotations

import threading

import pytest

from airflow_provider_cos.emulator import CosEmulator
from airflow_provider_cos.protocol.errors import (
    CosAlreadyExistsError,
    CosIntegrityError,
    CosNotFoundError,
    CosSessionError,
    CosUnfinishedUploadError,
)
from airflow_provider_cos.protocol.messages import CosRequest, InstantUpload, SliceSession
from airflow_provider_cos.protocol.sha1parts import UploadPart
from tests.emulator.client import Client, MiB, hash_parts, payload, sha1, stored_bytes


@pytest.fixture
def v1(emulator: CosEmulator) -> Client:
    return Client(emulator.url, "v1")


@pytest.fixture
def v2(emulator: CosEmulator) -> Client:
    return Client(emulator.url, "v2")


@pytest.mark.parametrize("api", ["v1", "v2"])
@pytest.mark.parametrize("size", [0, 1, MiB, 3 * MiB + 17])
def test_full_slice_upload(emulator: CosEmulator, api: str, size: int) -> None:
    client = Client(emulator.url, api)
    data = payload(size, seed=size)
    urls = client.upload_slices("/f.bin", data)
    assert urls is not None and urls.resource_path.endswith("/f.bin")
    assert stored_bytes(emulator.data_dir, "/f.bin") == data
    info = client.stat("/f.bin")
    assert (info.filesize, info.filelen, info.sha) == (size, size, sha1(data))


def test_v1_completion_on_last_slice_and_resume(v1: Client, emulator: CosEmulator) -> None:
    data = payload(4 * MiB + 100, seed=11)
    res = v1.init("/r.bin", data)
    assert isinstance(res, SliceSession) and res.offset == 0 and res.slice_size == MiB
    for off in (0, MiB):
        ack = v1.put_slice("/r.bin", res.session, off, data[off : off + MiB])
        assert ack.urls is None and ack.offset == off and ack.session == res.session
    again = v1.init("/r.bin", data, session=res.session)
    assert isinstance(again, SliceSession) and again.session == res.session and again.offset == 2 * MiB
    same = v1.init("/r.bin", data)  # same sha and size: the open session is resumed
    assert same.session == res.session and same.offset == 2 * MiB
    # out of order is fine; completion on the slice that completes the file
    ack = v1.put_slice("/r.bin", res.session, 4 * MiB, data[4 * MiB :])
    assert ack.urls is None
    ack = v1.put_slice("/r.bin", res.session, 3 * MiB, data[3 * MiB : 4 * MiB])
    assert ack.urls is None
    ack = v1.put_slice("/r.bin", res.session, 2 * MiB, data[2 * MiB : 3 * MiB])
    assert ack.urls is not None and ack.urls.access_url.endswith("/r.bin")
    assert stored_bytes(emulator.data_dir, "/r.bin") == data
    # a retried last slice after completion is answered idempotently with the URLs
    ack = v1.put_slice("/r.bin", res.session, 2 * MiB, data[2 * MiB : 3 * MiB])
    assert ack.urls is not None
    # resume with a finished session returns the URLs
    assert isinstance(v1.init("/r.bin", data, session=res.session), InstantUpload)


def test_v1_sha_mismatch_keeps_session(v1: Client, emulator: CosEmulator) -> None:
    data = payload(2 * MiB, seed=12)
    res = v1.init("/m.bin", data)
    v1.put_slice("/m.bin", res.session, 0, data[:MiB])
    bad = bytes(MiB)
    with pytest.raises(CosIntegrityError) as err:
        v1.put_slice("/m.bin", res.session, MiB, bad)
    assert err.value.code == -174
    assert stored_bytes(emulator.data_dir, "/m.bin") is None
    ack = v1.put_slice("/m.bin", res.session, MiB, data[MiB:])  # re-sent correct slice repairs it
    assert ack.urls is not None
    assert stored_bytes(emulator.data_dir, "/m.bin") == data


def test_v2_unfinished_list_resume_finish(v2: Client, emulator: CosEmulator) -> None:
    data = payload(3 * MiB + 5, seed=21)
    with pytest.raises(CosNotFoundError) as nf:
        v2.slice_list("/u.bin")
    assert nf.value.status == 404
    res = v2.init("/u.bin", data)
    assert isinstance(res, SliceSession) and not res.serial_upload
    v2.put_slice("/u.bin", res.session, MiB, data[MiB : 2 * MiB])
    v2.put_slice("/u.bin", res.session, 3 * MiB, data[3 * MiB :])
    with pytest.raises(CosUnfinishedUploadError) as err:
        v2.init("/u.bin", data)
    assert err.value.code == -4019 and err.value.status == 400
    listed = v2.slice_list("/u.bin")
    assert isinstance(listed, SliceSession)
    assert listed.session == res.session and listed.filesize == len(data) and listed.sha == sha1(data)
    assert [(p.offset, p.datalen) for p in listed.received] == [(MiB, MiB), (3 * MiB, 5)]
    with pytest.raises(CosSessionError) as missing:
        v2.finish("/u.bin", res.session, len(data), sha1(data))
    assert missing.value.code == -4022
    for off in (0, 2 * MiB):
        v2.put_slice("/u.bin", res.session, off, data[off : off + MiB])
    urls = v2.finish("/u.bin", res.session, len(data), sha1(data))
    assert urls.resource_path.endswith("/u.bin")
    assert stored_bytes(emulator.data_dir, "/u.bin") == data
    # finish retried after success: idempotent; list now returns the URLs
    assert v2.finish("/u.bin", res.session, len(data), sha1(data)) == urls
    assert isinstance(v2.slice_list("/u.bin"), InstantUpload)


def test_v2_uploadparts_checked(v2: Client, emulator: CosEmulator) -> None:
    data = payload(3 * MiB, seed=31)
    sha, parts = hash_parts(data, MiB)
    broken = [parts[0], UploadPart(parts[1].offset, parts[1].datalen, "0" * 40), parts[2]]
    req = v2.d.prepare_slice_init("/p.bin", filesize=len(data), sha=sha, slice_size=MiB, uploadparts=broken)
    res = v2.d.process_slice_init(200, v2.send(req).content)
    assert isinstance(res, SliceSession)
    for off in range(0, len(data), MiB):
        v2.put_slice("/p.bin", res.session, off, data[off : off + MiB])
    with pytest.raises(CosIntegrityError) as err:
        v2.finish("/p.bin", res.session, len(data), sha)
    assert err.value.code == -174
    assert stored_bytes(emulator.data_dir, "/p.bin") is None


def test_v2_uploadparts_1mib_granularity_with_2mib_slices(v2: Client, emulator: CosEmulator) -> None:
    data = payload(5 * MiB + 3, seed=32)
    sha, parts_1m = hash_parts(data, MiB)  # JV4 style: hashed per 1 MiB although slices are 2 MiB
    req = v2.d.prepare_slice_init("/g.bin", filesize=len(data), sha=sha, slice_size=2 * MiB, uploadparts=parts_1m)
    res = v2.d.process_slice_init(200, v2.send(req).content)
    assert isinstance(res, SliceSession) and res.slice_size == 2 * MiB
    for off in range(0, len(data), 2 * MiB):
        v2.put_slice("/g.bin", res.session, off, data[off : off + 2 * MiB])
    v2.finish("/g.bin", res.session, len(data), sha)
    assert stored_bytes(emulator.data_dir, "/g.bin") == data


def test_v2_sha_mismatch_and_size_mismatch(v2: Client) -> None:
    data = payload(2 * MiB, seed=33)
    res = v2.init("/s.bin", data, parts=False)
    for off in (0, MiB):
        v2.put_slice("/s.bin", res.session, off, data[off : off + MiB])
    with pytest.raises(CosIntegrityError) as err:
        v2.finish("/s.bin", res.session, len(data), sha1(b"other"))
    assert err.value.code == -174
    with pytest.raises(CosIntegrityError) as err2:
        v2.finish("/s.bin", res.session, len(data) + 1)
    assert err2.value.code == -175
    assert v2.finish("/s.bin", res.session, len(data), sha1(data)).url


def test_v2_init_sha_mismatch_with_content(v2: Client, emulator: CosEmulator) -> None:
    data = payload(MiB + 1, seed=34)
    req = v2.d.prepare_slice_init("/i.bin", filesize=len(data), sha=sha1(b"declared"), slice_size=MiB)
    res = v2.d.process_slice_init(200, v2.send(req).content)
    for off in (0, MiB):
        v2.put_slice("/i.bin", res.session, off, data[off : off + MiB])
    with pytest.raises(CosIntegrityError):
        v2.finish("/i.bin", res.session, len(data))


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_offset_and_length_validation(emulator: CosEmulator, api: str) -> None:
    client = Client(emulator.url, api)
    data = payload(2 * MiB + 10, seed=41)
    res = client.init("/o.bin", data)
    cases = [
        (1, data[:MiB]),
        (MiB, data[:100]),
        (2 * MiB, data[:11]),
        (3 * MiB, data[:10]),
        (-MiB, data[:MiB]),
        (10**18, data[:10]),
        (0, data[: MiB + 1]),
    ]
    for offset, chunk in cases:
        with pytest.raises(CosSessionError) as err:
            client.put_slice("/o.bin", res.session, offset, chunk)
        assert err.value.code == -4021, (offset, len(chunk))
    with pytest.raises(CosSessionError) as unknown:
        client.put_slice("/o.bin", "no-such-session", 0, data[:MiB])
    assert unknown.value.code == -4020
    form = CosRequest(
        client.d.prepare_slice_data("/o.bin", session=res.session, offset=0, length=1).op,
        "POST",
        "/o.bin",
        fields=(
            ("op", client.d.prepare_slice_data("/o.bin", session="s", offset=0, length=1).op),
            ("session", res.session),
            ("offset", "12abc"),
        ),
        body_format="multipart",
        file_field="filecontent",
        data_len=1,
    )
    status, env = client.envelope(form, b"x")
    assert status == 400 and env["code"] == -61


def test_resent_slice_is_idempotent(v2: Client, emulator: CosEmulator) -> None:
    data = payload(2 * MiB, seed=51)
    res = v2.init("/i2.bin", data)
    for _ in range(3):
        v2.put_slice("/i2.bin", res.session, 0, data[:MiB])
    v2.put_slice("/i2.bin", res.session, MiB, data[MiB:])
    listed = v2.slice_list("/i2.bin")
    assert isinstance(listed, SliceSession)
    assert [(p.offset, p.datalen) for p in listed.received] == [(0, MiB), (MiB, MiB)]
    v2.finish("/i2.bin", res.session, len(data), sha1(data))
    assert stored_bytes(emulator.data_dir, "/i2.bin") == data
    assert emulator.stats.slice_bytes == 4 * MiB


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_stat_during_open_upload(emulator: CosEmulator, api: str) -> None:
    client = Client(emulator.url, api)
    data = payload(3 * MiB, seed=61)
    res = client.init("/open.bin", data)
    client.put_slice("/open.bin", res.session, MiB, data[MiB : 2 * MiB])
    info = client.stat("/open.bin")
    assert info.filesize == 3 * MiB and info.filelen == MiB and not info.complete
    assert info.sha == sha1(data) and info.ctime and info.access_url
    listed = client.list("/").infos
    assert [(i.name, i.filelen) for i in listed] == [("open.bin", MiB)]


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_delete_discards_session(emulator: CosEmulator, api: str) -> None:
    client = Client(emulator.url, api)
    data = payload(2 * MiB, seed=71)
    res = client.init("/d.bin", data)
    client.put_slice("/d.bin", res.session, 0, data[:MiB])
    client.delete("/d.bin")
    with pytest.raises(CosNotFoundError):
        client.stat("/d.bin")
    with pytest.raises(CosSessionError):
        client.put_slice("/d.bin", res.session, MiB, data[MiB:])
    if api == "v2":
        with pytest.raises(CosNotFoundError):
            client.slice_list("/d.bin")
    fresh = client.init("/d.bin", data)
    assert isinstance(fresh, SliceSession) and fresh.session != res.session
    sessions_dir = emulator.data_dir / "buckets" / f"{client.bucket.appid}-{client.bucket.bucket}" / "sessions"
    assert len(list(sessions_dir.iterdir())) == 1


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_instant_upload(emulator: CosEmulator, api: str) -> None:
    client = Client(emulator.url, api)
    data = payload(3 * MiB, seed=81)
    client.upload_slices("/orig.bin", data)
    before = emulator.stats.slice_bytes
    res = client.init("/copy.bin", data)
    assert isinstance(res, InstantUpload) and res.urls.resource_path.endswith("/copy.bin")
    assert stored_bytes(emulator.data_dir, "/copy.bin") == data
    assert isinstance(client.init("/orig.bin", data), InstantUpload)  # target already holds it
    assert isinstance(client.init("/orig.bin", data, insert_only=True), InstantUpload)
    assert emulator.stats.slice_bytes == before
    client.delete("/orig.bin")
    assert stored_bytes(emulator.data_dir, "/copy.bin") == data  # the copy is independent


def test_insert_only_on_slice_init(v2: Client) -> None:
    v2.upload("/x.bin", b"old")
    with pytest.raises(CosAlreadyExistsError) as err:
        v2.init("/x.bin", payload(MiB + 1), insert_only=True)
    assert err.value.code == -177


def test_server_slice_size_and_serial(v2: Client, v1: Client, emulator: CosEmulator) -> None:
    data = payload(4 * MiB, seed=91)
    assert v2.init("/a1", data, slice_size=2 * MiB).slice_size == 2 * MiB
    assert v2.init("/a2", data, slice_size=1000, parts=False).slice_size == MiB  # not a multiple of 64
    assert v2.init("/a3", data, slice_size=32 * 1024).slice_size == MiB
    assert v2.init("/a4", data, slice_size=64 * MiB, parts=False).slice_size == MiB
    emulator.settings.slice_size = 512 * 1024
    emulator.settings.serial_upload = True
    forced = v2.init("/a5", data, slice_size=2 * MiB)
    assert forced.slice_size == 512 * 1024 and forced.serial_upload
    assert v1.init("/a6", data).slice_size == 512 * 1024
    for off in range(0, len(data), 512 * 1024):
        v2.put_slice("/a5", forced.session, off, data[off : off + 512 * 1024])
    v2.finish("/a5", forced.session, len(data), sha1(data))
    assert stored_bytes(emulator.data_dir, "/a5") == data


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_concurrent_slices_of_one_session(emulator: CosEmulator, api: str) -> None:
    data = payload(12 * MiB + 7, seed=101)
    client = Client(emulator.url, api)
    res = client.init("/c.bin", data, slice_size=512 * 1024)
    step = res.slice_size
    offsets = list(range(0, len(data), step))
    errors: list[BaseException] = []
    urls: list[object] = []

    def worker(mine: list[int]) -> None:
        c = Client(emulator.url, api)
        try:
            for off in mine:
                ack = c.put_slice("/c.bin", res.session, off, data[off : off + step])
                if getattr(ack, "urls", None):
                    urls.append(ack.urls)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(offsets[i::6],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    if api == "v2":
        client.finish("/c.bin", res.session, len(data), sha1(data))
    else:
        assert len(urls) >= 1
    assert stored_bytes(emulator.data_dir, "/c.bin") == data
    assert emulator.stats.objects_completed == 1


def test_simple_upload_replaces_open_session(v2: Client, emulator: CosEmulator) -> None:
    data = payload(2 * MiB, seed=111)
    v2.init("/s2.bin", data)
    v2.upload("/s2.bin", b"small")
    assert v2.stat("/s2.bin").filelen == 5
    with pytest.raises(CosNotFoundError):
        v2.slice_list("/nothing")
    assert isinstance(v2.slice_list("/s2.bin"), InstantUpload)
