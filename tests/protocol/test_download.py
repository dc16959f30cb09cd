"""The download step, sans I/O: URL forms, the download signature's place, processing of answers."""

from __future__ import annotations

import json

import pytest

from airflow_provider_cos.protocol.errors import CosNotFoundError, CosProtocolError, CosServerError
from airflow_provider_cos.protocol.messages import CosTarget, encode_request
from airflow_provider_cos.protocol.operations import V2
from airflow_provider_cos.protocol.paths import download_url


def test_download_url_forms() -> None:
    assert download_url("http://gz.file.myqcloud.com", "v2", "1250000000", "bk", "/a b/c.txt") == (
        "http://bk-1250000000.cosgz.myqcloud.com/a%20b/c.txt"
    )
    assert download_url("https://web.file.myqcloud.com", "v1", 1250000000, "bk", "/x") == (
        "https://bk-1250000000.cos.myqcloud.com/x"
    )
    # the emulator, a proxy: the object's API URL
    assert download_url("http://127.0.0.1:8089", "v2", "1250000000", "bk", "/x") == (
        "http://127.0.0.1:8089/files/v2/1250000000/bk/x"
    )


def test_download_request_carries_range_and_sign_in_the_query() -> None:
    target = CosTarget("http://127.0.0.1:1", "v2", "1250000000", "bk")
    req = V2.prepare_download("/d/f.bin", start=10, length=5)
    http = encode_request(target, req, "a+b/c=")
    assert http.method == "GET" and http.url.endswith("/files/v2/1250000000/bk/d/f.bin?sign=a%2Bb%2Fc%3D")
    assert dict(http.headers) == {"Range": "bytes=10-14"} and http.body is None
    with pytest.raises(ValueError):
        V2.prepare_download("/f", start=0, length=0)


def test_process_download() -> None:
    ok = V2.process_download
    assert ok(206, b"12345", path="/f", start=10, length=5) == b"12345"
    assert ok(200, b"12345", path="/f", start=0, length=5) == b"12345"  # the whole object when asked from 0
    with pytest.raises(CosProtocolError, match="carried 3 bytes"):
        ok(206, b"123", path="/f", start=10, length=5)  # truncated
    with pytest.raises(CosProtocolError, match="ignored the Range"):
        ok(200, b"x" * 20, path="/f", start=10, length=5)
    envelope = json.dumps({"code": -166, "message": "ERROR_CMD_COS_INDEX_ERROR", "data": {}}).encode()
    with pytest.raises(CosNotFoundError):
        ok(404, envelope, path="/f", start=0, length=5)
    with pytest.raises(CosServerError):
        ok(502, b"<html>bad gateway</html>", path="/f", start=0, length=5)
    err = None
    try:
        ok(206, b"", path="/f", start=0, length=5)
    except CosProtocolError as e:
        err = e
    assert err is not None and err.retryable
