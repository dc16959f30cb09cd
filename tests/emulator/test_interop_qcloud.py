"""Interoperability with the third-party ``qcloud-cos-py3`` 0.1.4 client (v2 API, no sha/uploadparts).

It hard-codes ``http://<region>.file.myqcloud.com``; we route it to the emulator through ``HTTP_PROXY``, so
the emulator also sees absolute-form request lines as a proxy would forward them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from airflow_provider_cos.emulator import DEMO, CosEmulator
from tests.emulator.client import MiB, payload, stored_bytes

qcloud = pytest.importorskip("qcloud_cos_py3")


@pytest.fixture
def bucket(emulator: CosEmulator, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", emulator.url)
    monkeypatch.setenv("http_proxy", emulator.url)
    return qcloud.CosBucket(int(DEMO.appid), DEMO.secret_id, DEMO.secret_key, DEMO.bucket, region="gz")


def test_slice_upload_stat_delete(bucket, emulator: CosEmulator, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = payload(3 * MiB + 12345, seed=77)
    local = tmp_path / "big.bin"
    local.write_bytes(data)
    assert bucket.create_folder("qc")["code"] == 0
    result = bucket.upload_slice_file(str(local), MiB, "big.bin", dir_name="qc")
    assert result["access_url"].endswith("/qc/big.bin")
    assert stored_bytes(emulator.data_dir, "/qc/big.bin") == data
    assert emulator.stats.requests["upload_slice_data"] == 4
    stat = bucket.stat_file("qc/big.bin")
    assert stat["code"] == 0
    assert stat["data"]["filesize"] == len(data) and stat["data"]["sha"] == hashlib.sha1(data).hexdigest()
    listing = bucket.list_folder("qc")
    assert [i["name"] for i in listing["data"]["infos"]] == ["big.bin"]
    assert bucket.delete_file("qc/big.bin")["code"] == 0
    assert bucket.stat_file("qc/big.bin")["code"] == -166
    assert bucket.delete_folder("qc")["code"] == 0


def test_simple_upload(bucket, emulator: CosEmulator) -> None:  # type: ignore[no-untyped-def]
    import io

    bucket.create_folder("s")
    res = bucket.upload_file(io.BytesIO(b"tiny"), "t.txt", dir_name="s")
    assert res["code"] == 0, res
    assert stored_bytes(emulator.data_dir, "/s/t.txt") == b"tiny"
