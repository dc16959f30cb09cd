"""Every simple operation in both dialects, folder preconditions, listing, field spelling, body formats."""

from __future__ import annotations

import json

import pytest
import requests

from airflow_provider_cos.emulator import DEMO, CosEmulator
from airflow_provider_cos.protocol.errors import (
    CosAlreadyExistsError,
    CosError,
    CosIntegrityError,
    CosInvalidRequestError,
    CosNotFoundError,
)
from airflow_provider_cos.protocol.messages import CosRequest
from airflow_provider_cos.protocol.multipart import encode_form
from tests.emulator.client import Client, payload, sha1, stored_bytes

DIALECTS = ["v1", "v2"]


@pytest.fixture(params=DIALECTS)
def client(request: pytest.FixtureRequest, emulator: CosEmulator) -> Client:
    return Client(emulator.url, request.param)


def test_simple_upload_stat_delete(client: Client, emulator: CosEmulator) -> None:
    data = payload(300_000, seed=7)
    urls = client.upload("/hello.bin", data, sha=sha1(data), biz_attr="attr-1")
    assert urls.resource_path == f"/{DEMO.appid}/{DEMO.bucket}/hello.bin"
    assert urls.access_url == f"http://{DEMO.bucket}-{DEMO.appid}.file.myqcloud.com/hello.bin"
    assert urls.url == f"{emulator.url}/files/{client.api_version}/{DEMO.appid}/{DEMO.bucket}/hello.bin"
    assert urls.source_url.endswith("/hello.bin")
    assert stored_bytes(emulator.data_dir, "/hello.bin") == data
    info = client.stat("/hello.bin")
    assert (info.filesize, info.filelen, info.sha, info.biz_attr) == (len(data), len(data), sha1(data), "attr-1")
    assert info.ctime and info.mtime and info.access_url == urls.access_url
    raw = client.send(client.d.prepare_stat("/hello.bin")).json()["data"]
    assert {"access_url", "source_url", "resource_path", "url", "ctime", "mtime"} <= set(raw)
    client.delete("/hello.bin")
    with pytest.raises(CosNotFoundError) as err:
        client.stat("/hello.bin")
    assert err.value.code == -166
    assert stored_bytes(emulator.data_dir, "/hello.bin") is None
    assert emulator.stats.requests["upload"] == 1


def test_upload_sha_mismatch_rejected(client: Client, emulator: CosEmulator) -> None:
    with pytest.raises(CosIntegrityError) as err:
        client.upload("/bad.bin", b"abc", sha=sha1(b"abd"))
    assert err.value.code == -174
    assert stored_bytes(emulator.data_dir, "/bad.bin") is None


def test_empty_file_upload(client: Client, emulator: CosEmulator) -> None:
    client.upload("/empty", b"")
    assert client.stat("/empty").filesize == 0
    assert stored_bytes(emulator.data_dir, "/empty") == b""


def test_folders_are_preconditions(client: Client) -> None:
    with pytest.raises(CosNotFoundError) as err:
        client.upload("/missing/a.txt", b"x")
    assert err.value.code == -166
    with pytest.raises(CosNotFoundError):
        client.init("/missing/big.bin", payload(2 << 20))
    client.mkdir("/missing/")
    client.mkdir("/missing/sub/")
    client.upload("/missing/sub/a.txt", b"x")
    with pytest.raises(CosAlreadyExistsError) as err2:
        client.mkdir("/missing/")
    assert err2.value.code == -178
    with pytest.raises(CosNotFoundError):
        client.mkdir("/nope/sub/")
    folder = client.stat("/missing/")
    assert folder.is_folder and folder.ctime
    with pytest.raises(CosError) as err3:
        client.delete("/missing/")
    assert err3.value.code == -173
    client.delete("/missing/sub/a.txt")
    client.delete("/missing/sub/")
    client.delete("/missing/")
    with pytest.raises(CosNotFoundError):
        client.stat("/missing/")
    with pytest.raises(CosNotFoundError):
        client.delete("/missing/")


def test_insert_only(client: Client, emulator: CosEmulator) -> None:
    client.upload("/io.txt", b"one")
    client.upload("/io.txt", b"one", insert_only=True)  # identical content: success
    with pytest.raises(CosAlreadyExistsError) as err:
        client.upload("/io.txt", b"two", insert_only=True)
    assert err.value.code == -177
    assert stored_bytes(emulator.data_dir, "/io.txt") == b"one"
    client.upload("/io.txt", b"two", insert_only=False)  # overwrite
    assert stored_bytes(emulator.data_dir, "/io.txt") == b"two"
    with pytest.raises(CosAlreadyExistsError):
        client.init("/io.txt", payload(3 << 20), insert_only=True)


def test_list_paging_and_prefix(client: Client) -> None:
    client.mkdir("/dir/")
    client.mkdir("/dir/zsub/")
    names = [f"f{i:02d}.txt" for i in range(7)]
    for name in names:
        client.upload(f"/dir/{name}", name.encode())
    seen: list[str] = []
    context = ""
    pages = 0
    while True:
        page = client.list("/dir/", num=3, context=context)
        pages += 1
        seen += [i.name for i in page.infos]
        assert len(page.infos) <= 3
        if page.listover:
            assert page.context == ""
            break
        assert page.context
        context = page.context
    assert pages == 3
    assert seen == [*names, "zsub"]
    entry = client.list("/dir/").infos[0]
    assert entry.filesize == 2 * 0 + len(b"f00.txt") and entry.sha == sha1(b"f00.txt")
    assert [i.is_folder for i in client.list("/dir/").infos][-1]
    prefixed = client.list("/dir/", prefix="f0")
    assert [i.name for i in prefixed.infos] == names
    assert client.list("/dir/", prefix="zs").infos[0].name == "zsub"
    with pytest.raises(CosNotFoundError):
        client.list("/nothere/")
    resp = client.send(CosRequest("list", "GET", "/dir/", query=(("op", "list"), ("num", "5000"))))
    assert resp.status_code == 400 and resp.json()["code"] == -170
    resp = client.send(CosRequest("list", "GET", "/dir/", query=(("op", "list"), ("context", "%%%"))))
    assert resp.status_code == 400


def test_missing_op(client: Client) -> None:
    resp = client.send(CosRequest("x", "POST", "/a.txt", fields=(("biz_attr", "1"),), body_format="json"))
    assert resp.status_code == 400
    assert resp.json()["code"] == -60
    assert resp.json()["message"] == "ERROR_CGI_PARAM_MISSING_OP"
    resp = client.send(CosRequest("x", "GET", "/a.txt"))  # a download (test_downloads.py): no such object
    assert resp.status_code == 404 and resp.json()["code"] == -166


def test_unknown_op(client: Client) -> None:
    resp = client.send(CosRequest("x", "POST", "/a.txt", fields=(("op", "frobnicate"),), body_format="json"))
    assert resp.status_code == 400 and resp.json()["code"] == -61


def test_case_insensitive_field_names(emulator: CosEmulator) -> None:
    client = Client(emulator.url, "v2")
    data = payload(2 << 20, seed=3)
    # fileContent / insertOnly / OP spelled in other cases, fileSize on finish (NET4)
    form = encode_form([("OP", "upload"), ("InsertOnly", "0")], "fileContent")
    resp = client.http.post(
        client.target.url("/cased.bin"),
        data=form.body(data[:1000]),
        headers={"Authorization": client.sign_for(client.d.prepare_stat("/x")), "Content-Type": form.content_type},
    )
    assert resp.json()["code"] == 0, resp.text
    assert stored_bytes(emulator.data_dir, "/cased.bin") == data[:1000]
    res = client.init("/cased2.bin", data)
    for off in (0, 1 << 20):
        client.put_slice("/cased2.bin", res.session, off, data[off : off + (1 << 20)])
    req = CosRequest(
        "upload_slice_finish",
        "POST",
        "/cased2.bin",
        fields=(("op", "upload_slice_finish"), ("session", res.session), ("fileSize", str(len(data)))),
        body_format="multipart",
    )
    assert client.envelope(req)[1]["code"] == 0
    assert stored_bytes(emulator.data_dir, "/cased2.bin") == data


def test_json_and_multipart_bodies_for_every_post_op(emulator: CosEmulator) -> None:
    client = Client(emulator.url, "v2")
    # create with multipart, delete with multipart, create with JSON, list slices with JSON
    assert (
        client.envelope(CosRequest("create", "POST", "/m/", fields=(("op", "create"),), body_format="multipart"))[1][
            "code"
        ]
        == 0
    )
    once = CosRequest("delete", "POST", "/m/", fields=(("op", "delete"),), body_format="multipart", signature="once")
    assert client.envelope(once)[1]["code"] == 0
    assert (
        client.envelope(
            CosRequest("create", "POST", "/j/", fields=(("op", "create"), ("biz_attr", "b")), body_format="json")
        )[1]["code"]
        == 0
    )
    assert client.stat("/j/").biz_attr == "b"
    data = payload(1 << 20)
    init_json = CosRequest(
        "upload_slice_init",
        "POST",
        "/j/x.bin",
        fields=(("op", "upload_slice_init"), ("filesize", str(len(data))), ("slice_size", str(512 * 1024))),
        body_format="json",
    )
    status, env = client.envelope(init_json)
    assert status == 200 and env["data"]["slice_size"] == 512 * 1024
    status, env = client.envelope(
        CosRequest("upload_slice_list", "POST", "/j/x.bin", fields=(("op", "upload_slice_list"),), body_format="json")
    )
    assert env["data"]["filesize"] == len(data)
    # url-encoded form body too
    resp = client.http.post(
        client.target.url("/u/"),
        data="op=create",
        headers={
            "Authorization": client.signer.multi(DEMO.appid, DEMO.bucket),
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert resp.json()["code"] == 0


def test_update_biz_attr(emulator: CosEmulator) -> None:
    client = Client(emulator.url, "v2")
    client.upload("/u.txt", b"u")
    req = CosRequest(
        "update", "POST", "/u.txt", fields=(("op", "update"), ("biz_attr", "new")), body_format="json", signature="once"
    )
    assert client.envelope(req)[1]["code"] == 0
    assert client.stat("/u.txt").biz_attr == "new"


def test_error_envelope_shape_and_status(client: Client) -> None:
    resp = client.send(client.d.prepare_stat("/nothing.txt"))
    assert resp.status_code == 400
    body = resp.json()
    assert set(body) == {"code", "message", "data"}
    assert body["code"] == -166 and body["message"] == "ERROR_CMD_COS_INDEX_ERROR"


def test_unknown_bucket(emulator: CosEmulator) -> None:
    resp = requests.get(
        f"{emulator.url}/files/v2/{DEMO.appid}/otherbucket/a?op=stat", headers={"Authorization": "x"}, timeout=10
    )
    assert resp.status_code == 400 and resp.json()["code"] == -133


def test_extra_buckets(emulator_factory) -> None:  # type: ignore[no-untyped-def]
    from airflow_provider_cos.emulator import BucketConfig

    other = BucketConfig("1250000001", "second", "AKIDsecondDemoIdNotReal000000000000", "second-demo-key")
    emu = emulator_factory(extra_buckets=[other])
    a, b = Client(emu.url, "v2"), Client(emu.url, "v2", bucket=other)
    a.upload("/same.txt", b"a")
    b.upload("/same.txt", b"b")
    assert stored_bytes(emu.data_dir, "/same.txt") == b"a"
    assert stored_bytes(emu.data_dir, "/same.txt", other) == b"b"
    # credentials are per bucket
    cross = Client(emu.url, "v2", bucket=BucketConfig(other.appid, other.bucket, DEMO.secret_id, DEMO.secret_key))
    with pytest.raises(CosError) as err:
        cross.stat("/same.txt")
    assert err.value.code == -92


def test_json_control_bodies_and_stats(emulator: CosEmulator) -> None:
    client = Client(emulator.url, "v1")
    client.upload("/s.txt", b"s")
    stats = requests.get(f"{emulator.url}/_emulator/stats", timeout=10).json()["data"]
    assert stats["requests"]["upload"] == 1 and stats["objects_completed"] == 1
    resp = requests.post(f"{emulator.url}/_emulator/settings", data=json.dumps({"serial_upload": True}), timeout=10)
    assert resp.json()["data"]["serial_upload"] is True and emulator.settings.serial_upload is True
    resp = requests.post(f"{emulator.url}/_emulator/settings", data=json.dumps({"bogus": 1}), timeout=10)
    assert resp.status_code == 400


def test_invalid_requests_are_not_retryable(client: Client) -> None:
    with pytest.raises(CosInvalidRequestError):
        client.data_of(CosRequest("list", "GET", "/", query=(("op", "list"), ("num", "abc"))))


def test_op_in_query_string_for_post(emulator: CosEmulator) -> None:
    client = Client(emulator.url, "v2")
    form = encode_form([("sha", sha1(b"q-body"))], "filecontent")
    resp = client.http.post(
        client.target.url("/q.txt") + "?op=upload",
        data=form.body(b"q-body"),
        timeout=10,
        headers={"Authorization": client.signer.multi(DEMO.appid, DEMO.bucket), "Content-Type": form.content_type},
    )
    assert resp.json()["code"] == 0, resp.text
    assert stored_bytes(emulator.data_dir, "/q.txt") == b"q-body"
