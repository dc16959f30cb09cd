"""Interoperability with the official SDK ``cos-python-sdk-v5`` (``qcloud_cos``) over the XML API.

The SDK is an independent client: its own signer, its own XML parsing, its multipart ``upload_file``
with threads and resume, its ``download_file`` with ranged GETs and the CRC-64 check. It reaches the
emulator in its ``IP``/``Port`` mode (URL ``http://127.0.0.1:<port>/<key>`` with an explicit, signed
``Host: <bucket>-<appid>.cos.<region>.myqcloud.com``), the way COS_XML_API.md §1.5 describes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_cos.emulator import DEMO, BucketConfig, CosEmulator, FaultRule
from airflow_provider_cos.protocol.crc64 import crc64
from tests.emulator.client import Client, payload

qcloud_cos = pytest.importorskip("qcloud_cos")
CosConfig, CosS3Client = qcloud_cos.CosConfig, qcloud_cos.CosS3Client
CosServiceError = qcloud_cos.CosServiceError
CosClientError = qcloud_cos.CosClientError

MiB = 1 << 20
BUCKET = f"{DEMO.bucket}-{DEMO.appid}"
OTHER = BucketConfig("1250000001", "otherbucket", "AKIDotherBucketIdNotReal0000000000000", "other-bucket-key")


def _client(emu: CosEmulator, secret_key: str = DEMO.secret_key, secret_id: str = DEMO.secret_id) -> Any:
    conf = CosConfig(
        Region="ap-guangzhou", SecretId=secret_id, SecretKey=secret_key, Scheme="http", IP="127.0.0.1", Port=emu.port
    )
    return CosS3Client(conf, retry=0)


@pytest.fixture
def sdk(emulator: CosEmulator) -> Any:
    return _client(emulator)


def test_put_head_get_range_list_delete(sdk: Any, emulator: CosEmulator) -> None:
    data = b"[Object Content]"
    put = sdk.put_object(Bucket=BUCKET, Body=data, Key="dir/a.txt")
    assert put["ETag"] == '"ee8de918d05640145b18f70f4c3aa602"'  # COS's own doc example
    assert put["x-cos-hash-crc64ecma"] == "16749565679157681890"
    head = sdk.head_object(Bucket=BUCKET, Key="dir/a.txt")
    assert (head["Content-Length"], head["ETag"]) == ("16", put["ETag"])
    ranged = sdk.get_object(Bucket=BUCKET, Key="dir/a.txt", Range="bytes=8-14")
    assert ranged["Body"].get_raw_stream().read() == b"Content"
    assert ranged["Content-Range"] == "bytes 8-14/16"
    for i in range(5):
        sdk.put_object(Bucket=BUCKET, Body=b"x" * i, Key=f"dir/p{i}.txt")
    keys: list[str] = []
    marker = ""
    pages = 0
    while True:
        page = sdk.list_objects(Bucket=BUCKET, Prefix="dir/", Marker=marker, MaxKeys=2)
        pages += 1
        keys += [c["Key"] for c in page.get("Contents", [])]
        if page["IsTruncated"] == "false":
            break
        marker = page["NextMarker"]
    assert pages == 3 and keys == ["dir/a.txt"] + [f"dir/p{i}.txt" for i in range(5)]
    sdk.delete_object(Bucket=BUCKET, Key="dir/a.txt")
    with pytest.raises(CosServiceError) as err:
        sdk.head_object(Bucket=BUCKET, Key="dir/a.txt")
    assert err.value.get_status_code() == 404
    assert Client(emulator.url, "v1").stat("/dir/p4.txt").filesize == 4  # the same storage as the JSON API


def test_upload_file_multipart_resume_and_download_with_crc(sdk: Any, emulator: CosEmulator, tmp_path: Path) -> None:
    data = payload(6 * MiB + 123, seed=21)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    emulator.add_fault(FaultRule(op="UploadPart", xml_code="InvalidArgument", times=2))
    with pytest.raises(CosClientError):  # two parts refused: the SDK leaves the upload in place
        sdk.upload_file(Bucket=BUCKET, Key="big.bin", LocalFilePath=str(src), PartSize=1, MAXThread=4)
    assert emulator.stats.faults_fired == 2
    uploads = sdk.list_multipart_uploads(Bucket=BUCKET, Prefix="big.bin")
    assert len(uploads["Upload"]) == 1
    emulator.reset_stats()
    sdk.upload_file(Bucket=BUCKET, Key="big.bin", LocalFilePath=str(src), PartSize=1, MAXThread=4)
    assert emulator.stats.requests.get("UploadPart") == 2  # resumed: only the two missing parts
    assert emulator.stats.requests.get("InitiateMultipartUpload") is None
    head = sdk.head_object(Bucket=BUCKET, Key="big.bin")
    assert head["ETag"].endswith('-7"') and int(head["x-cos-hash-crc64ecma"]) == crc64(data)
    dest = tmp_path / "dest.bin"
    sdk.download_file(Bucket=BUCKET, Key="big.bin", DestFilePath=str(dest), PartSize=1, MAXThread=4, EnableCRC=True)
    assert hashlib.sha256(dest.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert emulator.stats.requests["GetObject"] >= 7  # ranged GETs, then the SDK's CRC check passed


def test_create_list_abort_multipart(sdk: Any) -> None:
    ids = [sdk.create_multipart_upload(Bucket=BUCKET, Key=k)["UploadId"] for k in ("m/a", "m/b")]
    listed = sdk.list_multipart_uploads(Bucket=BUCKET, Prefix="m/")
    assert [u["UploadId"] for u in listed["Upload"]] == ids
    sdk.abort_multipart_upload(Bucket=BUCKET, Key="m/a", UploadId=ids[0])
    listed = sdk.list_multipart_uploads(Bucket=BUCKET, Prefix="m/")
    assert [u["UploadId"] for u in listed["Upload"]] == ids[1:]
    with pytest.raises(CosServiceError) as err:
        sdk.abort_multipart_upload(Bucket=BUCKET, Key="m/a", UploadId=ids[0])
    assert err.value.get_error_code() == "NoSuchUpload"


def test_wrong_key_expired_keytime_and_other_bucket_are_refused(emulator_factory: Any) -> None:
    emu: CosEmulator = emulator_factory(extra_buckets=[OTHER])
    sdk = _client(emu)
    sdk.put_object(Bucket=BUCKET, Body=b"secret", Key="s.txt")
    with pytest.raises(CosServiceError) as err:
        _client(emu, secret_key="not-the-key").get_object(Bucket=BUCKET, Key="s.txt")
    assert (err.value.get_status_code(), err.value.get_error_code()) == (403, "SignatureDoesNotMatch")
    # a pre-signed URL (query placement) signs the URL's host, 127.0.0.1: it reaches the default bucket
    fresh = sdk.get_presigned_url(Bucket=BUCKET, Key="s.txt", Method="GET", Expired=300)
    assert requests.get(fresh, timeout=10).content == b"secret"
    stale = sdk.get_presigned_url(Bucket=BUCKET, Key="s.txt", Method="GET", Expired=-120)  # KeyTime ended
    resp = requests.get(stale, timeout=10)
    assert resp.status_code == 403 and b"<Code>AccessDenied</Code>" in resp.content
    assert b"expired" in resp.content
    with pytest.raises(CosServiceError) as err:  # this bucket's key pair used for another bucket
        sdk.get_object(Bucket=f"{OTHER.bucket}-{OTHER.appid}", Key="s.txt")
    assert (err.value.get_status_code(), err.value.get_error_code()) == (403, "InvalidAccessKeyId")
    assert emu.stats.internal_errors == 0


def test_stats_count_objects_completed_through_xml(sdk: Any, emulator: CosEmulator, tmp_path: Path) -> None:
    """``objects_completed`` counts XML writes as it counts JSON ones (tests of the XML engine compare it)."""
    emulator.reset_stats()
    sdk.put_object(Bucket=BUCKET, Body=b"one", Key="stats/put.txt")
    assert emulator.stats.objects_completed == 1
    src = tmp_path / "two-parts.bin"
    src.write_bytes(os.urandom(2 * MiB + 1))
    sdk.upload_file(Bucket=BUCKET, Key="stats/multipart.bin", LocalFilePath=str(src), PartSize=1, MAXThread=1)
    stats = emulator.stats
    assert stats.requests["CompleteMultipartUpload"] == 1 and stats.objects_completed == 2, stats
