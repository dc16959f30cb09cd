"""The xml generation through the engine: PutObject / multipart against the emulator over real sockets."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_provider_cos.emulator import CosEmulator, FaultRule
from airflow_provider_cos.protocol.crc64 import Crc64
from airflow_provider_cos.protocol.errors import (
    CosAlreadyExistsError,
    CosError,
    CosFileChangedError,
    CosServerError,
)
from airflow_provider_cos.transfer import CosClient, LocalCheckpointStore, ProgressEvent, RetryPolicy
from airflow_provider_cos.transfer.multipart import part_size_for, plan_parts
from tests.support.faultproxy import FaultProxy, ProxyFault
from tests.transfer.conftest import KiB, MiB, small_config, write_file

Make = Callable[..., CosClient]
SIZE = 3 * MiB + 777


def crc_of(path: Path) -> str:
    c = Crc64()
    c.update(path.read_bytes())
    return c.decimal()


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


# ---------------------------------------------------------------------------------------------- faults


@pytest.mark.parametrize("status", [500, 502, 503])
def test_http_5xx_bursts(make_client: Make, emulator: CosEmulator, src: Path, status: int) -> None:
    emulator.add_fault(FaultRule(op="UploadPart", status=status, times=3))
    client = make_client("xml")
    result = client.upload_file(str(src), "/f.bin")
    assert emulator.stats.faults_fired == 3 and result.bytes_sent == SIZE
    check_object(client, "f.bin", src)


def test_5xx_beyond_the_policy_leaves_the_upload_to_resume(
    make_client: Make, emulator: CosEmulator, src: Path, tmp_path: Path
) -> None:
    store = LocalCheckpointStore(tmp_path / "ckpt")
    emulator.add_fault(FaultRule(op="UploadPart", status=503, times=None))
    client = make_client("xml", config=small_config(max_workers=1))
    with pytest.raises(CosError) as info:
        client.upload_file(str(src), "/f.bin", checkpoint_store=store)
    assert info.value.status == 503 and info.value.error_code == "SlowDown"
    assert client.head("/f.bin") is None
    left = client.list_uploads("/f.bin")
    assert len(left) == 1  # not aborted: a later try continues it
    emulator.clear_faults()
    result = client.upload_file(str(src), "/f.bin", checkpoint_store=store)
    assert client.list_uploads("/f.bin") == [] and result.crc64 == crc_of(src)
    check_object(client, "f.bin", src)


@pytest.mark.parametrize("kind", ["garbage", "empty"])
def test_garbage_or_empty_answers_are_retried(make_client: Make, emulator: CosEmulator, src: Path, kind: str) -> None:
    emulator.add_fault(FaultRule(op="UploadPart", times=2, **{kind: True}))
    emulator.add_fault(FaultRule(op="InitiateMultipartUpload", times=1, **{kind: True}))
    client = make_client("xml")
    client.upload_file(str(src), "/f.bin")
    assert emulator.stats.faults_fired == 3
    check_object(client, "f.bin", src)


def test_dropped_connection_is_retried(make_client: Make, emulator: CosEmulator, src: Path) -> None:
    emulator.add_fault(FaultRule(op="UploadPart", drop=True, times=2))
    client = make_client("xml")
    client.upload_file(str(src), "/f.bin")
    assert emulator.stats.faults_fired == 2
    check_object(client, "f.bin", src)


def test_connection_reset_mid_part(make_client: Make, emulator: CosEmulator, src: Path) -> None:
    with FaultProxy(emulator.url) as proxy:
        proxy.add(ProxyFault("reset", nth=2, match=b"partNumber=", after_bytes=200 * KiB, times=2))
        events: list[ProgressEvent] = []
        # verify=False: the proxy cannot relay a HEAD answer (no body); checked directly below
        client = make_client("xml", url=proxy.url, config=small_config(verify=False))
        client.upload_file(str(src), "/f.bin", progress=events.append)
        assert proxy.faults_fired == 2
        assert any(e.bytes_delta < 0 for e in events)  # the reset part's bytes were rewound
        assert events[-1].bytes_done == SIZE
    check_object(make_client("xml"), "f.bin", src)


def test_stalled_server_read_timeout(make_client: Make, emulator: CosEmulator, src: Path) -> None:
    with FaultProxy(emulator.url) as proxy:
        proxy.add(ProxyFault("stall", nth=1, match=b"partNumber=", stall_seconds=5))
        client = make_client("xml", url=proxy.url, config=small_config(read_timeout=0.5, verify=False))
        client.upload_file(str(src), "/f.bin")
        assert proxy.faults_fired == 1
    check_object(make_client("xml"), "f.bin", src)


def test_error_inside_completes_200_is_an_error_and_retried(
    make_client: Make, emulator: CosEmulator, src: Path
) -> None:
    emulator.add_fault(FaultRule(op="CompleteMultipartUpload", status=200, xml_code="InternalError", times=1))
    client = make_client("xml")
    client.upload_file(str(src), "/f.bin")
    assert emulator.stats.faults_fired == 1
    assert emulator.stats.requests["CompleteMultipartUpload"] == 2
    check_object(client, "f.bin", src)
    emulator.add_fault(FaultRule(op="CompleteMultipartUpload", status=200, xml_code="InternalError", times=None))
    with pytest.raises(CosServerError) as info:
        client.upload_file(str(src), "/g.bin")
    assert info.value.error_code == "InternalError" and client.head("/g.bin") is None


def test_request_time_too_skewed_resigns_with_the_servers_clock(
    make_client: Make, emulator: CosEmulator, src: Path
) -> None:
    client = make_client("xml", clock=lambda: time.time() + 3600)  # our clock is an hour fast
    result = client.upload_file(str(src), "/f.bin")
    assert result.crc64 == crc_of(src)
    check_object(client, "f.bin", src)
    requests = emulator.stats.requests
    assert requests["ListMultipartUploads"] == 2  # the first request was refused once, then re-signed
    assert requests["InitiateMultipartUpload"] == 1 and requests["UploadPart"] == 4  # and no other


def test_emulator_restarted_mid_upload(make_client: Make, emulator: CosEmulator, src: Path) -> None:
    emulator.add_fault(FaultRule(op="UploadPart", delay=0.05, times=None))
    client = make_client(
        "xml",
        config=small_config(
            max_workers=2, retry=RetryPolicy(max_attempts=20, backoff_base=0.05, backoff_cap=0.2, deadline=30)
        ),
    )
    restarted = threading.Event()

    def restart() -> None:
        emulator.stop()
        threading.Event().wait(0.5)
        emulator.start()
        emulator.add_fault(FaultRule(op="UploadPart", delay=0.05, times=None))
        restarted.set()

    def on_progress(event: ProgressEvent) -> None:
        if event.bytes_done >= MiB and not hasattr(on_progress, "done"):
            on_progress.done = True  # type: ignore[attr-defined]
            threading.Thread(target=restart).start()

    client.upload_file(str(src), "/f.bin", progress=on_progress)
    assert restarted.wait(10)
    check_object(client, "f.bin", src)


def test_file_modified_during_upload(make_client: Make, emulator: CosEmulator, src: Path, tmp_path: Path) -> None:
    store = LocalCheckpointStore(tmp_path / "ckpt")
    emulator.add_fault(FaultRule(op="UploadPart", delay=0.02, times=None))
    client = make_client("xml", config=small_config(max_workers=2))

    def on_progress(event: ProgressEvent) -> None:
        if event.bytes_done >= MiB and not hasattr(on_progress, "done"):
            on_progress.done = True  # type: ignore[attr-defined]
            with open(src, "r+b") as f:
                f.seek(10)
                f.write(b"CHANGED")

    with pytest.raises(CosFileChangedError):
        client.upload_file(str(src), "/f.bin", progress=on_progress, checkpoint_store=store)
    assert client.head("/f.bin") is None
    assert client.list_uploads("/f.bin") == []  # cannot be resumed with this content: aborted
    assert list((tmp_path / "ckpt").glob("*.json")) == []


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
    import os
    import signal
    import subprocess

    from tests.transfer.test_resume import ROOT, WORKERS, run_json, uploader

    size = 8 * MiB + 4321
    part = MiB  # the uploader's 512 KiB slices, raised to COS's smallest part
    src = tmp_path / "src.bin"
    write_file(src, size)
    ckpt = tmp_path / "ckpt"
    extra = ["--checkpoint-dir", str(ckpt)] if with_checkpoint else []
    emulator.add_fault(FaultRule(op="UploadPart", delay=0.1, times=None))  # slow enough to kill
    proc = subprocess.Popen(
        uploader(emulator.url, "xml", src, "/resume.bin", *extra),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while emulator.stats.slice_bytes < 3 * MiB:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if with_checkpoint:
        assert list(ckpt.glob("*.json")), "the killed process left a checkpoint"
    emulator.clear_faults()
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
