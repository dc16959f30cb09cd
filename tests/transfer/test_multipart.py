"""The xml generation through the engine: PutObject / multipart against the emulator over real sockets.

Its fault tests run with v1/v2's in test_faults.py; here: part planning, the CRC-64 checks, insert_only and
resume (ListMultipartUploads / ListParts, checkpoint, SIGKILL, cancel)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_provider_cos.emulator import CosEmulator, FaultRule
from airflow_provider_cos.protocol.errors import (
    CosAlreadyExistsError,
    CosError,
)
from airflow_provider_cos.transfer import CosClient, LocalCheckpointStore, ProgressEvent
from airflow_provider_cos.transfer.multipart import part_size_for, plan_parts
from tests.transfer.conftest import KiB, MiB, crc_of, small_config, write_file

Make = Callable[..., CosClient]
SIZE = 3 * MiB + 777


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "src.bin"
    write_file(path, SIZE)
    return path


def read_back(client: CosClient, key: str) -> bytes:
    from airflow_provider_cos.protocol.xmloperations import XML
    from airflow_provider_cos.transfer.xmlcalls import xml_target

    data = client._xml.call(
        xml_target(client.target), XML.prepare_get_object(key), lambda s, h, b: XML.process_get_object(s, h, b, key=key)
    )
    return data.data


def test_part_size_is_raised_to_fit_10000_parts() -> None:
    assert part_size_for(10 * MiB, 512 * KiB) == MiB  # COS's smallest part
    assert part_size_for(10 * 1024 * MiB, MiB) == 2 * MiB  # 10 GiB: 1 MiB parts would be 10240
    ten_k = part_size_for(10 * 1024 * MiB, MiB)
    assert len(plan_parts(10 * 1024 * MiB, ten_k)) <= 10000
    assert len(plan_parts(10000 * MiB + 1, part_size_for(10000 * MiB + 1, MiB))) <= 10000


def test_small_file_is_one_put_object(make_client: Make, emulator: CosEmulator, tmp_path: Path) -> None:
    path = tmp_path / "small.bin"
    write_file(path, 300 * KiB)
    client = make_client("xml")
    result = client.upload_file(str(path), "/dir/small.bin")
    assert result.method == "simple" and result.crc64 == crc_of(path) and result.etag.startswith('"')
    assert result.resource_path == f"/{client.target.appid}/{client.target.bucket}/dir/small.bin"
    assert read_back(client, "dir/small.bin") == path.read_bytes()
    assert emulator.stats.requests.get("PutObject") == 1


def test_large_file_goes_in_parts_with_crc_checked(make_client: Make, emulator: CosEmulator, src: Path) -> None:
    client = make_client("xml")
    result = client.upload_file(str(src), "/big.bin")
    assert result.method == "multipart" and result.slices_sent == 4  # 1 MiB parts (512 KiB raised)
    assert result.bytes_sent == SIZE and result.crc64 == crc_of(src)
    assert read_back(client, "big.bin") == src.read_bytes()
    head = client.head("/big.bin")
    assert head is not None and head.size == SIZE and str(head.crc64) == result.crc64
    assert client.list_uploads("/big.bin") == []  # completed, nothing left behind


def check_object(client: CosClient, key: str, path: Path) -> None:
    assert read_back(client, key) == path.read_bytes()
    head = client.head("/" + key)
    assert head is not None and str(head.crc64) == crc_of(path)


def test_insert_only_refuses_an_existing_object(make_client: Make, emulator: CosEmulator, src: Path) -> None:
    client = make_client("xml")
    client.upload_file(str(src), "/f.bin")
    with pytest.raises(CosAlreadyExistsError):
        client.upload_file(str(src), "/f.bin", insert_only=True)


# ---------------------------------------------------------------------------------------------- resume


def _half_upload(client: CosClient, src: Path, key: str, parts: int, *, content: bytes | None = None) -> str:
    """Start a multipart upload of ``key`` and send its first ``parts`` 1 MiB parts, like a killed task."""
    from airflow_provider_cos.protocol.xmloperations import XML
    from airflow_provider_cos.transfer.xmlcalls import xml_target

    target = xml_target(client.target)
    upload_id = client._xml.call(
        target, XML.prepare_initiate(key), lambda s, h, b: XML.process_initiate(s, h, b, key=key)
    ).upload_id
    data = content if content is not None else src.read_bytes()
    for n in range(1, parts + 1):
        chunk = data[(n - 1) * MiB : n * MiB]
        client._xml.call(
            target,
            XML.prepare_upload_part(key, upload_id=upload_id, part_number=n, data_len=len(chunk)),
            lambda s, h, b, n=n: XML.process_upload_part(s, h, b, key=key, part_number=n),
            data=chunk,
        )
    return upload_id


def test_no_checkpoint_finds_the_upload_and_reuses_matching_parts(
    make_client: Make, emulator: CosEmulator, src: Path
) -> None:
    client = make_client("xml")
    upload_id = _half_upload(client, src, "f.bin", 2)
    result = client.upload_file(str(src), "/f.bin")
    assert result.resumed and result.bytes_sent == SIZE - 2 * MiB and result.slices_sent == 2
    assert client.list_uploads("/f.bin") == [] and upload_id
    check_object(client, "f.bin", src)


def test_found_upload_of_other_content_is_left_alone(make_client: Make, emulator: CosEmulator, src: Path) -> None:
    client = make_client("xml")
    other = bytes(reversed(src.read_bytes()))
    theirs = _half_upload(client, src, "f.bin", 2, content=other)
    result = client.upload_file(str(src), "/f.bin")
    assert not result.resumed and result.bytes_sent == SIZE
    assert client.list_uploads("/f.bin") == [theirs]  # another writer's: neither used nor aborted
    check_object(client, "f.bin", src)


def test_checkpoint_upload_with_a_changed_part_resends_only_that_part(
    make_client: Make, emulator: CosEmulator, src: Path, tmp_path: Path
) -> None:
    """The checkpoint names our upload; its parts are checked against the file read now (never trusted):
    a part that differs is sent again, matching ones are kept."""
    store = LocalCheckpointStore(tmp_path / "ckpt")
    emulator.add_fault(FaultRule(op="CompleteMultipartUpload", status=503, times=None))
    client = make_client("xml")
    with pytest.raises(CosError):
        client.upload_file(str(src), "/f.bin", checkpoint_store=store)
    assert list((tmp_path / "ckpt").glob("*.json"))  # names the upload, which is left
    (upload_id,) = client.list_uploads("/f.bin")
    emulator.clear_faults()
    with open(src, "r+b") as f:  # same size, part 2 changes
        f.seek(MiB + 5)
        f.write(b"NEW")
    result = client.upload_file(str(src), "/f.bin", checkpoint_store=store)
    assert result.resumed and result.bytes_sent == MiB and result.slices_sent == 1
    assert client.list_uploads("/f.bin") == [] and upload_id
    assert list((tmp_path / "ckpt").glob("*.json")) == []
    check_object(client, "f.bin", src)


@pytest.mark.parametrize("with_checkpoint", [True, False])
def test_sigkill_then_new_process_resumes(
    make_client: Make, emulator: CosEmulator, tmp_path: Path, with_checkpoint: bool
) -> None:
    """A killed uploader leaves its multipart upload; a new process continues it (by its checkpoint, or by
    ListMultipartUploads), re-sending at most (parts in flight + 1) parts."""
    from tests.transfer.test_resume import WORKERS, kill_midway, run_json, uploader

    size = 8 * MiB + 4321
    part = MiB  # the uploader's 512 KiB slices, raised to COS's smallest part
    src = tmp_path / "src.bin"
    write_file(src, size)
    ckpt = tmp_path / "ckpt"
    extra = ["--checkpoint-dir", str(ckpt)] if with_checkpoint else []
    kill_midway(emulator, uploader(emulator.url, "xml", src, "/resume.bin", *extra), "UploadPart")
    if with_checkpoint:
        assert list(ckpt.glob("*.json")), "the killed process left a checkpoint"
    result = run_json(uploader(emulator.url, "xml", src, "/resume.bin", *extra))
    assert result["resumed"] is True and result["crc64"] == crc_of(src) and result["method"] == "multipart"
    assert emulator.stats.requests.get("InitiateMultipartUpload") == 1  # the killed process's upload continued
    parts = len(plan_parts(size, part))
    resent_parts = emulator.stats.requests["UploadPart"] - parts  # both processes; a killed part counts whole
    assert resent_parts <= WORKERS + 1, f"re-sent {resent_parts} parts of {part} bytes"
    assert result["bytes_sent"] < size - 2 * part  # the new process sent only what was missing
    if with_checkpoint:
        assert list(ckpt.glob("*.json")) == []
    check_object(make_client("xml"), "resume.bin", src)


def test_memory_stays_within_the_documented_bound(emulator: CosEmulator, tmp_path: Path) -> None:
    """Peak Python allocations of a 24 MiB xml upload in a separate process, against the formula (parts
    of 1 MiB: the uploader's 512 KiB slices raised to COS's smallest part)."""
    from airflow_provider_cos.transfer import TransferConfig
    from tests.transfer.test_resume import WORKERS, run_json, uploader

    size = 24 * MiB
    src = tmp_path / "src.bin"
    write_file(src, size)
    result = run_json(uploader(emulator.url, "xml", src, "/mem.bin", "--tracemalloc"))
    assert result["method"] == "multipart"
    config = TransferConfig(slice_size=MiB, max_workers=WORKERS, hash_chunk_size=MiB)
    assert int(result["peak_traced"]) <= config.memory_bound(), result  # type: ignore[call-overload]
    assert int(result["peak_traced"]) < size / 4  # type: ignore[call-overload]


def test_list_parts_pages_are_followed(
    make_client: Make, emulator: CosEmulator, src: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_cos.transfer.multipart import MultipartUpload

    monkeypatch.setattr(MultipartUpload, "list_page", 1)
    client = make_client("xml")
    _half_upload(client, src, "f.bin", 3)
    result = client.upload_file(str(src), "/f.bin")
    assert result.resumed and result.bytes_sent == SIZE - 3 * MiB and result.slices_sent == 1
    assert emulator.stats.requests["ListParts"] == 3  # one page per held part: every page was followed
    check_object(client, "f.bin", src)


def test_cancel_leaves_the_upload_to_resume(
    make_client: Make, emulator: CosEmulator, src: Path, tmp_path: Path
) -> None:
    from airflow_provider_cos.protocol.errors import CosCancelledError

    store = LocalCheckpointStore(tmp_path / "ckpt")
    emulator.add_fault(FaultRule(op="UploadPart", delay=0.05, times=None))
    client = make_client("xml", config=small_config(max_workers=1))

    def on_progress(event: ProgressEvent) -> None:
        if event.bytes_done > MiB:  # one part at a time: part 2 is under way, so part 1 was acknowledged
            client.cancel()

    with pytest.raises(CosCancelledError):
        client.upload_file(str(src), "/f.bin", progress=on_progress, checkpoint_store=store)
    assert len(make_client("xml").list_uploads("/f.bin")) == 1  # not aborted
    assert list((tmp_path / "ckpt").glob("*.json"))
    emulator.clear_faults()
    result = make_client("xml").upload_file(str(src), "/f.bin", checkpoint_store=store)
    assert result.resumed and result.bytes_sent <= SIZE - MiB
    assert (
        emulator.stats.requests["InitiateMultipartUpload"] == 1
        and emulator.stats.requests.get("AbortMultipartUpload", 0) == 0
    )
    check_object(make_client("xml"), "f.bin", src)
