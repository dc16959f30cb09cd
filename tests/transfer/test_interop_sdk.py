"""Interop with the official SDK (``qcloud_cos``, cos-python-sdk-v5) on the same emulator, real sockets.

The SDK addresses ``<bucket>-<appid>.cos.<region>.myqcloud.com``; it reaches the emulator through its
``Proxies`` setting (absolute-form request lines, the production Host header and signature).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cos.emulator import DEMO, CosEmulator, FaultRule
from airflow_provider_cos.protocol.errors import CosError
from airflow_provider_cos.transfer import CosClient, LocalCheckpointStore
from tests.transfer.conftest import MiB, write_file
from tests.transfer.test_multipart import check_object, crc_of

qcloud_cos = pytest.importorskip("qcloud_cos")

Make = Callable[..., CosClient]
BUCKET = f"{DEMO.bucket}-{DEMO.appid}"
SIZE = 4 * MiB + 4321


@pytest.fixture
def sdk(emulator: CosEmulator) -> Any:
    conf = qcloud_cos.CosConfig(
        Region="ap-guangzhou",
        SecretId=DEMO.secret_id,
        SecretKey=DEMO.secret_key,
        Scheme="http",
        Proxies={"http": emulator.url},
    )
    return qcloud_cos.CosS3Client(conf)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "src.bin"
    write_file(path, SIZE, seed=3)
    return path


@pytest.mark.parametrize("size", [300 * 1024, SIZE])  # PutObject and multipart
def test_sdk_downloads_what_we_uploaded_with_its_crc64_check(
    make_client: Make, sdk: Any, tmp_path: Path, size: int
) -> None:
    path = tmp_path / "up.bin"
    write_file(path, size, seed=5)
    result = make_client("xml").upload_file(str(path), "/from-us/up.bin")
    out = tmp_path / "down.bin"
    sdk.download_file(Bucket=BUCKET, Key="from-us/up.bin", DestFilePath=str(out), EnableCRC=True)
    assert out.read_bytes() == path.read_bytes()
    head = sdk.head_object(Bucket=BUCKET, Key="from-us/up.bin")
    assert head["x-cos-hash-crc64ecma"] == result.crc64 == crc_of(path)


def test_we_resume_an_upload_the_sdk_started_and_left(
    make_client: Make, sdk: Any, emulator: CosEmulator, src: Path
) -> None:
    key = "from-sdk/big.bin"
    upload_id = sdk.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    data = src.read_bytes()
    for n in (1, 2):
        sdk.upload_part(Bucket=BUCKET, Key=key, Body=data[(n - 1) * MiB : n * MiB], PartNumber=n, UploadId=upload_id)
    result = make_client("xml").upload_file(str(src), "/" + key)
    assert result.resumed and result.bytes_sent == SIZE - 2 * MiB
    assert emulator.stats.requests["InitiateMultipartUpload"] == 1  # the SDK's upload was continued
    assert sdk.list_multipart_uploads(Bucket=BUCKET, Prefix=key).get("Upload") is None
    check_object(make_client("xml"), key, src)


def test_the_sdk_resumes_an_upload_we_left(
    make_client: Make, sdk: Any, emulator: CosEmulator, src: Path, tmp_path: Path
) -> None:
    emulator.add_fault(FaultRule(op="CompleteMultipartUpload", status=503, times=None))
    with pytest.raises(CosError):
        make_client("xml").upload_file(str(src), "/left/big.bin", checkpoint_store=LocalCheckpointStore(tmp_path))
    emulator.clear_faults()
    sent_before = emulator.stats.requests["UploadPart"]
    sdk.upload_file(Bucket=BUCKET, Key="left/big.bin", LocalFilePath=str(src), PartSize=1, MAXThread=2)
    assert emulator.stats.requests["InitiateMultipartUpload"] == 1  # ours, continued by the SDK
    assert emulator.stats.requests["UploadPart"] == sent_before  # every part was reused
    check_object(make_client("xml"), "left/big.bin", src)
    assert os.path.getsize(src) == SIZE
