"""The XML API of the emulator: one storage with the JSON API, addressing, signatures, multipart as COS
does it, uploads surviving a restart, fault injection (issue 8, "Emulator")."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_cos.emulator import DEMO, BucketConfig, CosEmulator, FaultRule
from airflow_provider_cos.emulator.storage import BucketStore, ObjectMeta
from airflow_provider_cos.emulator.xmlapi import assemble_parts, xml_data_hashers
from airflow_provider_cos.protocol.crc64 import crc64, crc64_fold
from airflow_provider_cos.protocol.errors import (
    CosAuthError,
    CosError,
    CosNotFoundError,
    CosServerError,
    CosSessionError,
    CosSignatureExpiredError,
)
from airflow_provider_cos.protocol.xmlmessages import CompletePart, parse_error_body, render_complete_request
from airflow_provider_cos.protocol.xmloperations import XmlRequest
from airflow_provider_cos.protocol.xmlsigning import XmlCredentials, XmlSigner
from tests.emulator.client import Client, payload, raw_http, sha1
from tests.emulator.xmlclient import XmlClient

MiB = 1 << 20
OTHER = BucketConfig("1250000001", "otherbucket", "AKIDotherBucketIdNotReal0000000000000", "other-bucket-key")


@pytest.fixture
def xml(emulator: CosEmulator) -> XmlClient:
    return XmlClient(emulator.url)


def _error(resp: requests.Response) -> tuple[int, str]:
    parsed = parse_error_body(resp.content)
    assert parsed is not None, (resp.status_code, resp.content[:300])
    assert parsed.message and parsed.resource and parsed.request_id, parsed  # the SDK needs all four
    assert resp.headers["x-cos-request-id"]
    return resp.status_code, parsed.code


# ------------------------------------------------------------------------------ one storage
def test_json_upload_is_seen_by_head_and_get(emulator: CosEmulator, xml: XmlClient) -> None:
    v1 = Client(emulator.url, "v1")
    v1.mkdir("/dir/")
    data = payload(3 * MiB + 17)
    v1.upload_slices("/dir/from-json.bin", data, MiB)
    head = xml.call("head_object", "dir/from-json.bin")
    assert head.size == len(data)
    assert head.etag == f'"{hashlib.md5(data).hexdigest()}"'
    assert head.crc64 == crc64(data)
    got = xml.call("get_object", "dir/from-json.bin")
    assert got.data == data and got.head.crc64 == crc64(data)


def test_xml_put_is_seen_by_v1_stat(emulator: CosEmulator, xml: XmlClient) -> None:
    data = payload(100_000, seed=3)
    put = xml.call("put_object", "put/by-xml.bin", len(data), data=data, crc64=crc64(data))
    assert put.etag == f'"{hashlib.md5(data).hexdigest()}"' and put.crc64 == crc64(data)
    info = Client(emulator.url, "v1").stat("/put/by-xml.bin")
    assert (info.filesize, info.sha) == (len(data), sha1(data))
    xml.call("delete_object", "put/by-xml.bin")
    with pytest.raises(CosNotFoundError):
        xml.call("head_object", "put/by-xml.bin")
    xml.call("delete_object", "put/by-xml.bin")  # a missing key: still 204


def test_get_range_and_invalid_range(xml: XmlClient) -> None:
    data = b"[Object Content]"
    xml.call("put_object", "r.txt", len(data), data=data)
    part = xml.call("get_object", "r.txt", start=8, end=14)
    assert (part.data, part.start, part.end, part.total) == (b"Content", 8, 14, 16)
    assert part.head.crc64 == crc64(data)  # the whole object's CRC, also in a 206
    resp = xml.send(XmlRequest("GetObject", "GET", "r.txt", headers=(("Range", "bytes=16-"),)))
    assert _error(resp) == (416, "InvalidRange")


# ------------------------------------------------------------------------------ addressing
def _signed(
    emulator: CosEmulator,
    method: str,
    path: str,
    host: str,
    bucket: BucketConfig = DEMO,
    uri: str | None = None,
    data: bytes = b"",
) -> requests.Response:
    signer = XmlSigner(XmlCredentials(bucket.secret_id, bucket.secret_key))
    headers = signer.sign_headers(method, uri or path, [], {"Host": host, "Content-Length": str(len(data))})
    return requests.request(method, emulator.url + path, headers=headers, data=data, timeout=10)


def test_addressing_host_path_style_and_default_bucket(emulator_factory: Any) -> None:
    emu: CosEmulator = emulator_factory(extra_buckets=[OTHER])
    other_host = f"{OTHER.bucket}-{OTHER.appid}.cos.ap-beijing.myqcloud.com"
    assert _signed(emu, "PUT", "/k.txt", other_host, OTHER, data=b"other").status_code == 200
    bare = f"127.0.0.1:{emu.port}"
    assert _signed(emu, "PUT", "/k.txt", bare, data=b"default").status_code == 200  # the first bucket
    style = f"/{OTHER.bucket}-{OTHER.appid}/k2.txt"
    for uri in (style, "/k2.txt"):  # path style: either path may be signed (§10 Q8)
        assert _signed(emu, "PUT", style, bare, OTHER, uri=uri, data=b"path").status_code == 200
    assert XmlClient(emu.url, OTHER).call("get_object", "k.txt").data == b"other"
    assert XmlClient(emu.url, OTHER).call("get_object", "k2.txt").data == b"path"
    assert XmlClient(emu.url).call("get_object", "k.txt").data == b"default"
    resp = _signed(emu, "GET", "/k.txt", "nosuch-1250000000.cos.ap-guangzhou.myqcloud.com")
    assert _error(resp) == (404, "NoSuchBucket")


# ------------------------------------------------------------------------------ signatures
def test_signatures_refused_as_cos_does(emulator_factory: Any) -> None:
    emu: CosEmulator = emulator_factory(extra_buckets=[OTHER])
    xml = XmlClient(emu.url)
    xml.call("put_object", "a.txt", 1, data=b"a")
    wrong = XmlClient(emu.url, signer=XmlSigner(XmlCredentials(DEMO.secret_id, "wrong-key")))
    with pytest.raises(CosAuthError) as err:
        wrong.call("head_object", "a.txt")
    assert err.value.status == 403
    assert _error(wrong.send(XmlRequest("GetObject", "GET", "a.txt"))) == (403, "SignatureDoesNotMatch")
    expired = XmlClient(
        emu.url,
        signer=XmlSigner(XmlCredentials(DEMO.secret_id, DEMO.secret_key), validity=10, clock=lambda: 1_000_000_000),
    )
    status, code = _error(expired.send(XmlRequest("GetObject", "GET", "a.txt")))
    assert (status, code) == (403, "AccessDenied")
    future = XmlClient(
        emu.url, signer=XmlSigner(XmlCredentials(DEMO.secret_id, DEMO.secret_key), clock=lambda: 4_000_000_000)
    )
    assert _error(future.send(XmlRequest("GetObject", "GET", "a.txt"))) == (403, "RequestTimeTooSkewed")
    with pytest.raises(CosSignatureExpiredError):  # re-sign (HEAD has no body: only GET can say so)
        future.call("get_object", "a.txt")
    # signed for the other bucket's host (with its own key), sent to this bucket's host
    other = XmlClient(emu.url, OTHER)
    req = XmlRequest("GetObject", "GET", "a.txt")
    assert other.signer is not None
    headers = other.signer.sign_headers("GET", "/a.txt", [], {"Host": other.target.host})
    headers["Host"] = xml.target.host
    resp = requests.get(emu.url + req.path, headers=headers, timeout=10)
    assert _error(resp) == (403, "InvalidAccessKeyId")
    # this bucket's key, signed for the other bucket's host, sent to this bucket
    assert xml.signer is not None
    headers = xml.signer.sign_headers("GET", "/a.txt", [], {"Host": other.target.host})
    headers["Host"] = xml.target.host
    assert _error(requests.get(emu.url + req.path, headers=headers, timeout=10)) == (403, "SignatureDoesNotMatch")
    resp = requests.get(emu.url + "/a.txt", headers={"Host": xml.target.host}, timeout=10)
    assert _error(resp) == (403, "AccessDenied")  # unsigned
    assert emu.stats.internal_errors == 0


# ------------------------------------------------------------------------------ multipart
def _parts(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _complete_raw(xml: XmlClient, key: str, upload_id: str, parts: list[CompletePart]) -> requests.Response:
    body = render_complete_request(parts)
    return xml.send(XmlRequest("CompleteMultipartUpload", "POST", key, params=(("uploadId", upload_id),), body=body))


def test_multipart_as_cos_does_it(emulator: CosEmulator, xml: XmlClient) -> None:
    data = payload(2 * MiB + 1000, seed=5)
    chunks = _parts(data, MiB)
    up = xml.call("initiate", "mp/obj.bin")
    assert len(up.upload_id) == 74 and up.upload_id[:10].isdigit()
    etags = []
    for n, chunk in enumerate(chunks, 1):
        part = xml.call(
            "upload_part", "mp/obj.bin", data=chunk, upload_id=up.upload_id, part_number=n, data_len=len(chunk)
        )
        assert part.etag == f'"{hashlib.md5(chunk).hexdigest()}"' and part.crc64 == crc64(chunk)
        etags.append(part.etag)
    resent = xml.call(
        "upload_part", "mp/obj.bin", data=b"x" * 10, upload_id=up.upload_id, part_number=2, data_len=10
    )  # a re-sent part overwrites
    first = xml.call("list_parts", "mp/obj.bin", upload_id=up.upload_id, max_parts=2)
    assert [p.part_number for p in first.parts] == [1, 2] and first.is_truncated
    assert first.parts[1].etag == resent.etag and first.parts[1].size == 10
    rest = xml.call("list_parts", "mp/obj.bin", upload_id=up.upload_id, part_number_marker=2)
    assert [p.part_number for p in rest.parts] == [3] and not rest.is_truncated
    good = [CompletePart(1, etags[0]), CompletePart(2, resent.etag), CompletePart(3, etags[2])]
    cases = [
        ([good[1], good[0], good[2]], "InvalidPartOrder"),
        ([good[0], good[2]], "InvalidPart"),  # gap
        ([good[0], CompletePart(2, etags[1]), good[2]], "InvalidPart"),  # the overwritten part's ETag
        (good, "EntityTooSmall"),  # part 2 (10 bytes) is not the last
    ]
    for parts, code in cases:
        assert _error(_complete_raw(xml, "mp/obj.bin", up.upload_id, parts)) == (400, code)
    xml.call(
        "upload_part", "mp/obj.bin", data=chunks[1], upload_id=up.upload_id, part_number=2, data_len=len(chunks[1])
    )
    resp = _complete_raw(xml, "mp/obj.bin", up.upload_id, [good[0], CompletePart(2, etags[1]), good[2]])
    assert resp.status_code == 200 and resp.content[:1].isspace()  # keep-alive whitespace first
    whole = crc64_fold((crc64(c), len(c)) for c in chunks)
    assert int(resp.headers["x-cos-hash-crc64ecma"]) == whole == crc64(data)
    result = xml.call("get_object", "mp/obj.bin")
    assert result.data == data and result.head.etag.endswith('-3"') and result.head.crc64 == crc64(data)
    assert Client(emulator.url, "v2").stat("/mp/obj.bin").sha == sha1(data)
    with pytest.raises(CosSessionError):  # NoSuchUpload after completion
        xml.call("list_parts", "mp/obj.bin", upload_id=up.upload_id)
    for number in ("0", "10001", "x"):
        resp = xml.send(
            XmlRequest(
                "UploadPart",
                "PUT",
                "mp/obj.bin",
                params=(("partNumber", number), ("uploadId", up.upload_id)),
                data_len=1,
            ),
            b"z",
        )
        assert _error(resp) == (400, "InvalidArgument")


def _multipart(xml: XmlClient, key: str, data: bytes) -> None:
    up = xml.call("initiate", key)
    done = []
    for n, chunk in enumerate(_parts(data, MiB), 1):
        part = xml.call("upload_part", key, data=chunk, upload_id=up.upload_id, part_number=n, data_len=len(chunk))
        done.append(CompletePart(n, part.etag))
    assert _complete_raw(xml, key, up.upload_id, done).status_code == 200


def _persisted_sha(emulator: CosEmulator, path: str) -> str:
    b = emulator.bucket
    metas = (emulator.data_dir / "buckets" / f"{b.appid}-{b.bucket}" / "objects").glob("*.json")
    return next(m["sha"] for m in (json.loads(f.read_text()) for f in metas) if m["path"] == path)


def _spy_blob_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    opened: list[str] = []
    real = BucketStore.blob_path

    def spy(store: BucketStore, meta: ObjectMeta) -> Path:
        opened.append(meta.path)
        return real(store, meta)

    monkeypatch.setattr(BucketStore, "blob_path", spy)
    return opened


def test_parts_are_hashed_for_etag_and_crc_only_and_head_reads_no_data(
    emulator: CosEmulator, xml: XmlClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A part needs its MD5 (ETag) and CRC-64, not a SHA-1; Complete concatenates without hashing (the
    SHA-1, which only the JSON API answers, is computed on the first JSON request that needs it, once);
    HeadObject of the completed object answers from its metadata without opening its data."""
    assert sorted(xml_data_hashers("UploadPart")) == ["crc64", "md5"]
    assert sorted(xml_data_hashers("PutObject")) == ["crc64", "md5", "sha1"]
    data = payload(2 * MiB + 7, seed=9)
    _multipart(xml, "mp/meta.bin", data)
    assert _persisted_sha(emulator, "/mp/meta.bin") == ""  # Complete did not hash the object
    opened = _spy_blob_reads(monkeypatch)
    for _ in range(2):
        head = xml.call("head_object", "mp/meta.bin")
        assert head.etag.endswith('-3"') and head.crc64 == crc64(data) and head.size == len(data)
    assert opened == [] and _persisted_sha(emulator, "/mp/meta.bin") == ""
    v1 = Client(emulator.url, "v1")
    assert v1.stat("/mp/meta.bin").sha == sha1(data) and opened == ["/mp/meta.bin"]  # hashed on first need
    assert v1.stat("/mp/meta.bin").sha == sha1(data) and opened == ["/mp/meta.bin"]  # then persisted
    assert _persisted_sha(emulator, "/mp/meta.bin") == sha1(data)
    assert xml.call("get_object", "mp/meta.bin").data == data and opened == ["/mp/meta.bin"] * 2


def test_a_multipart_object_is_found_by_instant_upload_and_keeps_its_sha_across_restart(
    emulator: CosEmulator, xml: XmlClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The v2 instant upload (秒传) finds content that arrived by multipart, although Complete did not hash
    it; the SHA-1 computed then is persisted: after a restart nothing is read again."""
    data = payload(2 * MiB + 11, seed=12)
    _multipart(xml, "mp/source.bin", data)
    _multipart(xml, "mp/same-size-other.bin", payload(2 * MiB + 11, seed=13))
    v2 = Client(emulator.url, "v2")
    before = emulator.stats
    v2.upload_slices("/copy.bin", data)  # init with the SHA-1: answered without slices
    after = emulator.stats
    assert after.slice_bytes == before.slice_bytes and after.objects_completed == before.objects_completed + 1
    assert xml.call("get_object", "copy.bin").data == data
    emulator.stop()
    emulator.start()
    opened = _spy_blob_reads(monkeypatch)
    assert v2.stat("/mp/source.bin").sha == sha1(data) and opened == []


def test_abort_and_list_uploads(xml: XmlClient) -> None:
    ids = [xml.call("initiate", key).upload_id for key in ("u/a", "u/b", "u/b", "v/c")]
    page = xml.call("list_uploads", prefix="u/", max_uploads=2)
    assert [(u.key, u.upload_id) for u in page.uploads] == [("u/a", ids[0]), ("u/b", ids[1])]
    assert page.is_truncated
    key_marker, id_marker = page.next_page_markers()
    rest = xml.call("list_uploads", prefix="u/", key_marker=key_marker, upload_id_marker=id_marker)
    assert [u.upload_id for u in rest.uploads] == [ids[2]] and not rest.is_truncated
    xml.call("abort", "u/b", upload_id=ids[1])
    with pytest.raises(CosSessionError):
        xml.call("abort", "u/b", upload_id=ids[1])
    assert [u.upload_id for u in xml.call("list_uploads").uploads] == [ids[0], ids[2], ids[3]]


def test_list_objects_pages_prefix_delimiter(xml: XmlClient) -> None:
    for key in ("a/1", "a/2", "a/sub/3", "b", "腾讯云.txt"):
        xml.call("put_object", key, 1, data=b"x")
    seen: list[str] = []
    prefixes: list[str] = []
    marker = ""
    while True:
        page = xml.call("get_bucket", delimiter="/", marker=marker, max_keys=2)
        seen += [c.key for c in page.contents]
        prefixes += list(page.common_prefixes)
        marker = page.next_page_marker()
        if marker is None:
            break
    assert (seen, prefixes) == (["b", "腾讯云.txt"], ["a/"])
    page = xml.call("get_bucket", prefix="a/", delimiter="/")
    assert [c.key for c in page.contents] == ["a/1", "a/2"] and page.common_prefixes == ("a/sub/",)


def test_uploads_survive_restart(emulator: CosEmulator, xml: XmlClient) -> None:
    data = payload(MiB + 5, seed=8)
    up = xml.call("initiate", "restart.bin")
    first = xml.call("upload_part", "restart.bin", data=data[:MiB], upload_id=up.upload_id, part_number=1, data_len=MiB)
    emulator.stop()
    emulator.start()
    listed = xml.call("list_parts", "restart.bin", upload_id=up.upload_id)
    assert [(p.part_number, p.etag, p.size) for p in listed.parts] == [(1, first.etag, MiB)]
    second = xml.call("upload_part", "restart.bin", data=data[MiB:], upload_id=up.upload_id, part_number=2, data_len=5)
    xml.call(
        "complete",
        "restart.bin",
        upload_id=up.upload_id,
        parts=[CompletePart(1, first.etag), CompletePart(2, second.etag)],
    )
    assert xml.call("get_object", "restart.bin").data == data


# ------------------------------------------------------------------------------ faults
def test_faults_for_xml_operations(emulator: CosEmulator, xml: XmlClient) -> None:
    emulator.add_fault(FaultRule(op="UploadPart", status=503))
    emulator.add_fault(FaultRule(op="PutObject", xml_code="SlowDown"))
    up = xml.call("initiate", "f.bin")
    with pytest.raises(CosError) as err:
        xml.call("upload_part", "f.bin", data=b"1", upload_id=up.upload_id, part_number=1, data_len=1)
    assert (err.value.status, err.value.error_code, err.value.retryable) == (503, "SlowDown", True)
    resp = xml.send(XmlRequest("PutObject", "PUT", "g.bin", data_len=1), b"g")
    assert _error(resp) == (503, "SlowDown")
    with pytest.raises(CosNotFoundError):
        xml.call("head_object", "g.bin")  # a fault answers instead of the operation: no effect
    part = xml.call("upload_part", "f.bin", data=b"1", upload_id=up.upload_id, part_number=1, data_len=1)
    emulator.add_fault(FaultRule(op="CompleteMultipartUpload", status=200, xml_code="InternalError"))
    with pytest.raises(CosServerError) as err2:
        xml.call("complete", "f.bin", upload_id=up.upload_id, parts=[CompletePart(1, part.etag)])
    assert err2.value.status == 200 and err2.value.error_code == "InternalError" and err2.value.retryable
    done = xml.call("complete", "f.bin", upload_id=up.upload_id, parts=[CompletePart(1, part.etag)])
    assert done.upload.key == "f.bin"
    emulator.add_fault(FaultRule(op="PutObject", drop=True, after_bytes=1000))
    with pytest.raises(requests.ConnectionError):
        xml.send(XmlRequest("PutObject", "PUT", "h.bin", data_len=MiB), b"h" * MiB)
    assert emulator.stats.faults_fired == 4


def test_a_body_over_5_gib_is_refused_before_it_is_read(emulator: CosEmulator, xml: XmlClient) -> None:
    assert xml.signer is not None
    headers = xml.signer.sign_headers("PUT", "/huge.bin", [], {"Host": xml.target.host, "Content-Length": str(6 << 30)})
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    answer = raw_http(emulator.url, f"PUT /huge.bin HTTP/1.1\r\n{head}\r\n".encode() + b"x" * 1000)
    assert answer.startswith(b"HTTP/1.1 400") and b"<Code>EntityTooLarge</Code>" in answer, answer[:300]
    assert b"Connection: close" in answer


def test_a_key_that_is_not_utf8_is_an_invalid_object_name(emulator: CosEmulator) -> None:
    answer = raw_http(emulator.url, b"GET /bad%FF.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400") and b"<Code>InvalidObjectName</Code>" in answer, answer[:300]
    assert emulator.stats.internal_errors == 0


@pytest.mark.parametrize("kernel_copy", [True, False])
def test_assemble_parts_concatenates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_copy: bool) -> None:
    """Complete's concatenation: the same bytes with ``copy_file_range`` and where it fails (EXDEV on some
    filesystems) in the middle of a part - the copy falls back to reads and writes from where it stopped."""
    import errno
    import os

    chunks = [payload(MiB + 3, seed=1), payload(5, seed=2), payload(2 * MiB, seed=3)]
    sources = []
    for i, chunk in enumerate(chunks):
        sources.append(tmp_path / f"part-{i}")
        sources[-1].write_bytes(chunk)
    calls: list[int] = []
    real = getattr(os, "copy_file_range", None)

    def failing(src: int, dst: int, count: int, offset_src: int, offset_dst: int) -> int:
        calls.append(count)
        if len(calls) == 1 and real is not None:  # one piece goes through, then the filesystem refuses
            return real(src, dst, min(count, 4096), offset_src, offset_dst)
        raise OSError(errno.EXDEV, "cross-device")

    if not kernel_copy:
        monkeypatch.setattr(os, "copy_file_range", failing, raising=False)
    target = tmp_path / "whole"
    target.write_bytes(b"stale content longer than nothing" * 100_000)  # replaced, not appended to
    data = b"".join(chunks)
    assemble_parts(sources, target)
    assert target.read_bytes() == data
    assert kernel_copy or len(calls) == 2
