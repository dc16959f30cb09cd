"""Faults from real sockets: emulator fault rules and the fault proxy. Each test ends with the right
object (stat + the bytes on the emulator's disk) or a clear typed error — never a wrong object."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_provider_cos.emulator import CosEmulator, FaultRule
from airflow_provider_cos.protocol.errors import (
    CosFileChangedError,
    CosServerError,
    CosSignatureExpiredError,
    CosTransportError,
    CosUploadConflictError,
)
from airflow_provider_cos.protocol.signing import Signer
from airflow_provider_cos.transfer import CosClient, ProgressEvent
from tests.support.faultproxy import FaultProxy, ProxyFault
from tests.transfer.conftest import KiB, MiB, small_config, stored_sha1, write_file

Make = Callable[..., CosClient]
SIZE = 3 * MiB + 777
SLICE_OP = {"v1": "upload_slice", "v2": "upload_slice_data"}


def check_object(client: CosClient, emu: CosEmulator, cos_path: str, sha1: str) -> None:
    info = client.stat(cos_path)
    assert info is not None and info.complete and info.sha == sha1 and info.filesize == SIZE
    assert stored_sha1(emu, cos_path) == sha1


def check_no_object(client: CosClient, emu: CosEmulator, cos_path: str) -> None:
    """No object was created. (``stat`` may still describe the abandoned open session, with
    ``filelen`` = bytes received, so the emulator's object metadata on disk is what counts.)"""
    assert stored_sha1(emu, cos_path) is None


@pytest.fixture
def src(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "src.bin"
    return path, write_file(path, SIZE)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_http_5xx_bursts(
    make_client: Make, emulator: CosEmulator, src: tuple[Path, str], api_version: str, status: int
) -> None:
    path, sha1 = src
    emulator.add_fault(FaultRule(op=SLICE_OP[api_version], status=status, times=3))
    client = make_client(api_version)
    result = client.upload_file(str(path), "/f.bin")
    assert emulator.stats.faults_fired == 3
    assert result.bytes_sent == SIZE
    check_object(client, emulator, "/f.bin", sha1)


def test_5xx_beyond_the_policy_is_a_typed_error(
    make_client: Make, emulator: CosEmulator, src: tuple[Path, str], api_version: str
) -> None:
    path, _ = src
    emulator.add_fault(FaultRule(op=SLICE_OP[api_version], status=503, times=None))
    client = make_client(api_version)
    with pytest.raises(CosServerError) as info:
        client.upload_file(str(path), "/f.bin")
    assert info.value.status == 503
    check_no_object(client, emulator, "/f.bin")


@pytest.mark.parametrize("kind", ["garbage", "empty"])
def test_garbage_or_empty_answers_are_retried(
    make_client: Make, emulator: CosEmulator, src: tuple[Path, str], api_version: str, kind: str
) -> None:
    path, sha1 = src
    emulator.add_fault(FaultRule(op=SLICE_OP[api_version], times=2, **{kind: True}))
    init_op = "upload_slice" if api_version == "v1" else "upload_slice_init"
    emulator.add_fault(FaultRule(op=init_op, times=1, **{kind: True}))
    client = make_client(api_version)
    client.upload_file(str(path), "/f.bin")
    assert emulator.stats.faults_fired == 3
    check_object(client, emulator, "/f.bin", sha1)


@pytest.mark.parametrize("code", [-71, -143])
def test_throttling_is_retried(make_client: Make, emulator: CosEmulator, src: tuple[Path, str], code: int) -> None:
    path, sha1 = src
    emulator.add_fault(FaultRule(op="upload_slice_data", code=code, times=2))
    client = make_client("v2")
    client.upload_file(str(path), "/f.bin")
    assert emulator.stats.faults_fired == 2  # both throttling answers were given, and retried past
    check_object(client, emulator, "/f.bin", sha1)


def test_dropped_connection_is_retried(
    make_client: Make, emulator: CosEmulator, src: tuple[Path, str], api_version: str
) -> None:
    path, sha1 = src
    emulator.add_fault(FaultRule(op=SLICE_OP[api_version], drop=True, times=2))
    client = make_client(api_version)
    client.upload_file(str(path), "/f.bin")
    assert emulator.stats.faults_fired == 2  # both connections were dropped, and retried past
    check_object(client, emulator, "/f.bin", sha1)


def test_expired_signature_resigned_once(make_client: Make, emulator: CosEmulator, src: tuple[Path, str]) -> None:
    path, sha1 = src
    emulator.add_fault(FaultRule(op="upload_slice_data", code=-96, times=1))
    client = make_client("v2")
    client.upload_file(str(path), "/f.bin")
    check_object(client, emulator, "/f.bin", sha1)
    emulator.add_fault(FaultRule(op="upload_slice_init", code=-96, times=2))
    with pytest.raises(CosSignatureExpiredError):
        client.upload_file(str(path), "/g.bin")


def test_connection_reset_mid_slice(
    make_client: Make, emulator: CosEmulator, src: tuple[Path, str], api_version: str
) -> None:
    path, sha1 = src
    with FaultProxy(emulator.url) as proxy:
        proxy.add(ProxyFault("reset", nth=2, match=b'name="filecontent"', after_bytes=200 * KiB, times=2))
        events: list[ProgressEvent] = []
        client = make_client(api_version, url=proxy.url)
        client.upload_file(str(path), "/f.bin", progress=events.append)
        assert proxy.faults_fired == 2
        assert any(e.bytes_delta < 0 for e in events)  # the reset slice's bytes were rewound
        assert events[-1].bytes_done == SIZE
        check_object(client, emulator, "/f.bin", sha1)


def test_stalled_server_read_timeout(
    make_client: Make, emulator: CosEmulator, src: tuple[Path, str], api_version: str
) -> None:
    path, sha1 = src
    with FaultProxy(emulator.url) as proxy:
        proxy.add(ProxyFault("stall", nth=1, match=b'name="filecontent"', stall_seconds=5))
        client = make_client(api_version, url=proxy.url, config=small_config(read_timeout=0.5))
        client.upload_file(str(path), "/f.bin")
        assert proxy.faults_fired == 1
        check_object(client, emulator, "/f.bin", sha1)


def test_truncated_answer(make_client: Make, emulator: CosEmulator, src: tuple[Path, str], api_version: str) -> None:
    path, sha1 = src
    with FaultProxy(emulator.url) as proxy:
        proxy.add(ProxyFault("truncate", nth=1, match=b'name="filecontent"', times=2))
        client = make_client(api_version, url=proxy.url)
        client.upload_file(str(path), "/f.bin")
        assert proxy.faults_fired == 2
        check_object(client, emulator, "/f.bin", sha1)


def test_server_gone_is_a_transport_error(make_client: Make, emulator: CosEmulator, src: tuple[Path, str]) -> None:
    path, _ = src
    url = emulator.url
    emulator.stop()
    client = make_client("v2", url=url)
    with pytest.raises(CosTransportError) as info:
        client.upload_file(str(path), "/f.bin")
    assert info.value.__cause__ is not None  # converted at the transport boundary, `from e`


def test_session_lost_midway(make_client: Make, emulator: CosEmulator, src: tuple[Path, str], api_version: str) -> None:
    """Someone deletes the path (discarding the open session) mid-upload: the engine re-inits and
    completes with the right content."""
    path, sha1 = src
    emulator.add_fault(FaultRule(op=SLICE_OP[api_version], delay=0.02, times=None))
    client = make_client(api_version, config=small_config(max_workers=2))
    killer = make_client(api_version)
    fired = threading.Event()

    def on_progress(event: ProgressEvent) -> None:
        if event.bytes_done >= MiB and not fired.is_set():
            fired.set()
            killer.delete("/f.bin")

    client.upload_file(str(path), "/f.bin", progress=on_progress)
    assert fired.is_set()
    check_object(client, emulator, "/f.bin", sha1)


def test_v2_unfinished_upload_is_listed_and_completed(
    make_client: Make, emulator: CosEmulator, src: tuple[Path, str]
) -> None:
    """-4019 → upload_slice_list → only the missing slices → finish (no local checkpoint needed)."""
    path, sha1 = src
    emulator.add_fault(FaultRule(op="upload_slice_finish", status=400, code=-61, times=1))
    first = make_client("v2", config=small_config(retry=small_config().retry.never()))
    with pytest.raises(Exception):  # noqa: B017 - any typed failure of the first attempt
        first.upload_file(str(path), "/f.bin")
    assert emulator.stats.slice_bytes == SIZE
    second = make_client("v2")
    result = second.upload_file(str(path), "/f.bin")
    assert result.resumed and result.bytes_sent == 0
    assert emulator.stats.slice_bytes == SIZE  # nothing re-sent
    assert emulator.stats.requests.get("upload_slice_list") == 1
    check_object(second, emulator, "/f.bin", sha1)


def test_v2_listed_session_of_other_content_is_left_alone(
    make_client: Make, emulator: CosEmulator, tmp_path: Path
) -> None:
    """A session of other content that this upload did not open may be another writer's live upload:
    a typed conflict naming it, never a delete (issue 7 §2). Once the path is cleared, the upload goes."""
    other = tmp_path / "other.bin"
    write_file(other, SIZE, seed=9)
    emulator.add_fault(FaultRule(op="upload_slice_finish", status=400, code=-61, times=1))
    first = make_client("v2", config=small_config(retry=small_config().retry.never()))
    with pytest.raises(Exception):  # noqa: B017
        first.upload_file(str(other), "/f.bin")
    mine = tmp_path / "mine.bin"
    sha1 = write_file(mine, SIZE, seed=10)
    client = make_client("v2")
    with pytest.raises(CosUploadConflictError, match="another upload of different content is in progress"):
        client.upload_file(str(mine), "/f.bin")
    assert emulator.stats.requests.get("delete", 0) == 0
    check_no_object(client, emulator, "/f.bin")
    client.delete("/f.bin")
    result = client.upload_file(str(mine), "/f.bin")
    assert not result.resumed and result.bytes_sent == SIZE
    check_object(client, emulator, "/f.bin", sha1)


def test_own_leftover_session_of_earlier_content_is_replaced(
    make_client: Make, emulator: CosEmulator, tmp_path: Path, api_version: str
) -> None:
    """The checkpoint names the session this upload opened for the file's earlier content: that one is ours
    to replace after the file was rewritten."""
    from airflow_provider_cos.transfer import LocalCheckpointStore

    store = LocalCheckpointStore(tmp_path / "ckpt")
    src = tmp_path / "f.bin"
    write_file(src, SIZE, seed=9)
    emulator.add_fault(FaultRule(op=SLICE_OP[api_version], status=400, code=-61, times=1))
    first = make_client(api_version, config=small_config(retry=small_config().retry.never()))
    with pytest.raises(Exception):  # noqa: B017
        first.upload_file(str(src), "/f.bin", checkpoint_store=store)
    assert emulator.stats.faults_fired == 1
    sha1 = write_file(src, SIZE, seed=10)
    result = make_client(api_version).upload_file(str(src), "/f.bin", checkpoint_store=store)
    assert result.sha1 == sha1 and not result.resumed
    check_object(make_client(api_version), emulator, "/f.bin", sha1)


def test_emulator_restarted_mid_upload(
    make_client: Make, emulator: CosEmulator, src: tuple[Path, str], api_version: str
) -> None:
    path, sha1 = src
    emulator.add_fault(FaultRule(op=SLICE_OP[api_version], delay=0.02, times=None))
    from airflow_provider_cos.transfer import RetryPolicy

    client = make_client(
        api_version,
        config=small_config(
            max_workers=2, retry=RetryPolicy(max_attempts=20, backoff_base=0.05, backoff_cap=0.2, deadline=30)
        ),
    )
    restarted = threading.Event()

    def restart() -> None:
        emulator.stop()
        threading.Event().wait(0.5)
        emulator.start()
        emulator.add_fault(FaultRule(op=SLICE_OP[api_version], delay=0.02, times=None))
        restarted.set()

    def on_progress(event: ProgressEvent) -> None:
        if event.bytes_done >= MiB and not hasattr(on_progress, "done"):
            on_progress.done = True  # type: ignore[attr-defined]
            threading.Thread(target=restart).start()

    client.upload_file(str(path), "/f.bin", progress=on_progress)
    assert restarted.wait(10)
    check_object(client, emulator, "/f.bin", sha1)


def test_file_modified_during_upload(
    make_client: Make, emulator: CosEmulator, src: tuple[Path, str], api_version: str, tmp_path: Path
) -> None:
    path, _ = src
    from airflow_provider_cos.transfer import LocalCheckpointStore

    store = LocalCheckpointStore(tmp_path / "ckpt")
    emulator.add_fault(FaultRule(op=SLICE_OP[api_version], delay=0.02, times=None))
    client = make_client(api_version, config=small_config(max_workers=2))

    def on_progress(event: ProgressEvent) -> None:
        if event.bytes_done >= MiB and not hasattr(on_progress, "done"):
            on_progress.done = True  # type: ignore[attr-defined]
            with open(path, "r+b") as f:
                f.seek(10)
                f.write(b"CHANGED")

    with pytest.raises(CosFileChangedError):
        client.upload_file(str(path), "/f.bin", progress=on_progress, checkpoint_store=store)
    check_no_object(client, emulator, "/f.bin")
    assert list((tmp_path / "ckpt").glob("*.json")) == []


class RecordingSigner(Signer):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.seen: set[str] = set()

    def multi(self, appid: str | int, bucket: str) -> str:
        sig = super().multi(appid, bucket)
        self.seen.add(sig)
        return sig

    def once(self, appid: str | int, bucket: str, fileid: str) -> str:
        sig = super().once(appid, bucket, fileid)
        self.seen.add(sig)
        return sig


def test_no_secret_or_signature_in_debug_logs(
    make_client: Make, emulator: CosEmulator, src: tuple[Path, str], api_version: str, caplog: pytest.LogCaptureFixture
) -> None:
    from airflow_provider_cos.emulator import DEMO
    from airflow_provider_cos.protocol.signing import Credentials
    from airflow_provider_cos.transfer import LoggingProgress

    path, _ = src
    signer = RecordingSigner(Credentials(DEMO.secret_id, DEMO.secret_key))
    emulator.add_fault(FaultRule(op=SLICE_OP[api_version], status=503, times=1))
    client = make_client(api_version, signer=signer)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("urllib3").setLevel(logging.DEBUG)
        client.upload_file(str(path), "/f.bin", progress=LoggingProgress(logging.getLogger("t"), 0.0))
        client.delete("/f.bin")
    text = "\n".join(r.getMessage() + repr(r.args) for r in caplog.records) + caplog.text
    assert "urllib3" in caplog.text  # urllib3's debug lines were captured ...
    assert signer.seen and len(signer.seen) > 5
    assert DEMO.secret_key not in text  # ... and hold neither the key ...
    for sig in signer.seen:
        assert sig not in text  # ... nor any Authorization value
    assert "Authorization" not in text
    assert DEMO.secret_key not in repr(client) and DEMO.secret_key not in repr(signer)
