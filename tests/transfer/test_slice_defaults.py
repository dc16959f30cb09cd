"""The slice / part size when none is configured: one table per API (``DEFAULT_SLICE_SIZE``), seen on
the wire: what a v1/v2 init requests and what size the xml parts are."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_provider_cos.emulator import CosEmulator
from airflow_provider_cos.protocol.errors import CosConfigError
from airflow_provider_cos.transfer import CosClient, TransferConfig
from airflow_provider_cos.transfer.config import DEFAULT_SLICE_SIZE
from tests.transfer.conftest import MiB, small_config, write_file


def test_the_table_and_an_explicit_size() -> None:
    assert dict(DEFAULT_SLICE_SIZE) == {"v1": MiB, "v2": MiB, "xml": 8 * MiB}
    assert TransferConfig().slice_size is None
    assert [TransferConfig().slice_size_for(api) for api in ("v1", "v2", "xml")] == [MiB, MiB, 8 * MiB]
    assert TransferConfig(slice_size=2 * MiB).slice_size_for("xml") == 2 * MiB
    assert TransferConfig().memory_bound(api_version="xml") > TransferConfig().memory_bound()
    with pytest.raises(CosConfigError, match="slice_size"):
        TransferConfig(slice_size=100_000)


def test_xml_parts_are_8_mib_by_default(
    make_client: Callable[..., CosClient], emulator: CosEmulator, tmp_path: Path
) -> None:
    src = tmp_path / "src.bin"
    write_file(src, 17 * MiB + 5)
    client = make_client("xml", config=small_config(slice_size=None))
    result = client.upload_file(str(src), "/parts.bin")
    assert result.etag is not None and result.etag.strip('"').endswith("-3")  # 8 + 8 + 1 MiB (+5 bytes)
    assert emulator.stats.requests.get("UploadPart") == 3


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_json_inits_request_1_mib_by_default(
    make_client: Callable[..., CosClient], emulator: CosEmulator, tmp_path: Path, api: str
) -> None:
    src = tmp_path / "src.bin"
    write_file(src, 3 * MiB + 5)
    emulator.reset_stats()
    make_client(api, config=small_config(slice_size=None)).upload_file(str(src), "/slices.bin")
    stats = emulator.stats
    sent = stats.requests["upload_slice"] - 1 if api == "v1" else stats.requests["upload_slice_data"]  # v1: - init
    assert stats.slice_bytes == 3 * MiB + 5 and sent == 4  # 1 + 1 + 1 MiB + 5 bytes
