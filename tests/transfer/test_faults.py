"""Faults from real sockets: emulator fault rules and the fault proxy, for every API the engine drives (v1,
v2, xml). Each test asserts that its fault fired and ends with the right object (checked by content through
the API in use and on the emulator's disk, :func:`check_stored`) or a clear typed error, never a wrong
object. What differs between the APIs is data (the tables below); the few tests that exist for one API
only say why."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cos.emulator import CosEmulator, FaultRule
from airflow_provider_cos.protocol.errors import (
    CosError,
    CosFileChangedError,
    CosIntegrityError,
    CosServerError,
    CosSignatureExpiredError,
    CosThrottledError,
    CosTransportError,
    CosUploadConflictError,
)
from airflow_provider_cos.transfer import CosClient, LocalCheckpointStore, ProgressEvent, RetryPolicy
from tests.support.faultproxy import FaultProxy, ProxyFault
from tests.transfer.conftest import FAST_RETRY, KiB, MiB, check_stored, small_config, stored_sha1, write_file

Make = Callable[..., CosClient]
SIZE = 3 * MiB + 777
APIS = ("v1", "v2", "xml")

#: The emulator's op of a data request (a slice; an xml part) and of the request that opens an upload.
#: (v1's ``upload_slice`` is its init too: the first rule on it hits the init.)
DATA_OP = {"v1": "upload_slice", "v2": "upload_slice_data", "xml": "UploadPart"}
OPEN_OP = {"v1": "upload_slice_init", "v2": "upload_slice_init", "xml": "InitiateMultipartUpload"}
#: Bytes that mark a data request for the fault proxy (in its head or the first 4 KiB of its body).
DATA_MARK = {"v1": b'name="filecontent"', "v2": b'name="filecontent"', "xml": b"partNumber="}
#: The size of one slice / part of SIZE with small_config(): JSON's 512 KiB slices; xml raises them to 1 MiB,
#: COS's smallest part.
PART = {"v1": 512 * KiB, "v2": 512 * KiB, "xml": MiB}


def data_request_at(api_version: str, offset: int) -> bytes:
    """Bytes that mark the data request of the slice / part starting at ``offset``."""
    if api_version == "xml":
        return b"?partNumber=%d&" % (offset // PART["xml"] + 1)
    return b'name="offset"\r\n\r\n%d\r\n' % offset


def check_no_object(emu: CosEmulator, cos_path: str) -> None:
    """No object was created. (JSON ``stat`` may still describe the abandoned open session, with ``filelen``
    = bytes received, so the emulator's object metadata on disk is what counts.)"""
    assert stored_sha1(emu, cos_path) is None


def discard_open_upload(client: CosClient, cos_path: str) -> None:
    """What another actor does to an upload in progress: JSON, delete the path (which discards its open
    session); xml, abort every multipart upload of the key (its parts go, the UploadId is then unknown)."""
    if not client.xml:
        client.delete(cos_path)
        return
    from airflow_provider_cos.protocol.xmloperations import XML
    from airflow_provider_cos.transfer.xmlcalls import object_key, xml_target

    key = object_key(cos_path)
    for upload_id in client.list_uploads(cos_path):
        client._xml.call(
            xml_target(client.target),
            XML.prepare_abort(key, upload_id=upload_id),
            lambda s, h, b: XML.process_abort(s, h, b, key=key),
        )


@pytest.fixture(params=APIS)
def api_version(request: pytest.FixtureRequest) -> str:
    """Every API the engine drives (overrides conftest's v1/v2 fixture for this module)."""
    return str(request.param)


@pytest.fixture(params=["v1", "v2"])
def json_api_version(request: pytest.FixtureRequest) -> str:
    """The JSON generations, for the tests of JSON-only behaviour."""
    return str(request.param)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "src.bin"
    write_file(path, SIZE)
    return path


# ---------------------------------------------------------------------------------------------- emulator faults


@pytest.mark.parametrize("status", [500, 502, 503])
def test_http_5xx_bursts(make_client: Make, emulator: CosEmulator, src: Path, api_version: str, status: int) -> None:
    emulator.add_fault(FaultRule(op=DATA_OP[api_version], status=status, times=3))
    client = make_client(api_version)
    result = client.upload_file(str(src), "/f.bin")
    assert emulator.stats.faults_fired == 3
    assert result.bytes_sent == SIZE
    check_stored(client, emulator, "/f.bin", src)


def test_5xx_beyond_the_policy_is_a_typed_error_and_a_later_try_completes(
    make_client: Make, emulator: CosEmulator, src: Path, api_version: str, tmp_path: Path
) -> None:
    store = LocalCheckpointStore(tmp_path / "ckpt")
    emulator.add_fault(FaultRule(op=DATA_OP[api_version], status=503, times=None))
    client = make_client(api_version, config=small_config(max_workers=1))
    with pytest.raises((CosServerError, CosThrottledError)) as info:  # xml: 503 SlowDown is throttling
        client.upload_file(str(src), "/f.bin", checkpoint_store=store)
    assert info.value.status == 503 and info.value.retryable  # retried until the policy gave up
    assert emulator.stats.faults_fired >= small_config().retry.max_attempts
    check_no_object(emulator, "/f.bin")
    if client.xml:
        assert len(client.list_uploads("/f.bin")) == 1  # not aborted: the later try continues it
    emulator.clear_faults()
    client.upload_file(str(src), "/f.bin", checkpoint_store=store)
    check_stored(client, emulator, "/f.bin", src)
    assert list((tmp_path / "ckpt").glob("*.json")) == []
    if client.xml:
        assert client.list_uploads("/f.bin") == [] and emulator.stats.requests["InitiateMultipartUpload"] == 1


@pytest.mark.parametrize("kind", ["garbage", "empty"])
def test_garbage_or_empty_answers_are_retried(
    make_client: Make, emulator: CosEmulator, src: Path, api_version: str, kind: str
) -> None:
    emulator.add_fault(FaultRule(op=DATA_OP[api_version], times=2, **{kind: True}))
    emulator.add_fault(FaultRule(op=OPEN_OP[api_version], times=1, **{kind: True}))
    client = make_client(api_version)
    client.upload_file(str(src), "/f.bin")
    assert emulator.stats.faults_fired == 3
    check_stored(client, emulator, "/f.bin", src)


#: Throttling answers: JSON's -71 / -143 envelopes; xml's 503 SlowDown and a 429 with a code the table does
#: not know (classified by its status).
THROTTLING = {
    "v1": [{"code": -71}, {"code": -143}],
    "v2": [{"code": -71}, {"code": -143}],
    "xml": [{"xml_code": "SlowDown"}, {"status": 429, "xml_code": "TooManyRequests"}],
}


@pytest.mark.parametrize(
    ("api_version", "answer"),
    [(api, answer) for api, answers in THROTTLING.items() for answer in answers],
    ids=lambda v: v if isinstance(v, str) else "-".join(str(x) for x in v.values()),
)
def test_throttling_is_retried(
    make_client: Make, emulator: CosEmulator, src: Path, api_version: str, answer: dict[str, Any]
) -> None:
    emulator.add_fault(FaultRule(op=DATA_OP[api_version], times=2, **answer))
    client = make_client(api_version)
    client.upload_file(str(src), "/f.bin")
    assert emulator.stats.faults_fired == 2  # both throttling answers were given, and retried past
    check_stored(client, emulator, "/f.bin", src)


def test_dropped_connection_is_retried(make_client: Make, emulator: CosEmulator, src: Path, api_version: str) -> None:
    emulator.add_fault(FaultRule(op=DATA_OP[api_version], drop=True, times=2))
    client = make_client(api_version)
    client.upload_file(str(src), "/f.bin")
    assert emulator.stats.faults_fired == 2  # both connections were dropped, and retried past
    check_stored(client, emulator, "/f.bin", src)


#: "Signature expired": JSON's -96; xml's RequestTimeTooSkewed (403), which also re-signs with the server's clock.
EXPIRED: dict[str, dict[str, Any]] = {
    "v1": {"code": -96},
    "v2": {"code": -96},
    "xml": {"xml_code": "RequestTimeTooSkewed"},
}


def test_expired_signature_resigned_once(make_client: Make, emulator: CosEmulator, src: Path, api_version: str) -> None:
    emulator.add_fault(FaultRule(op=DATA_OP[api_version], times=1, **EXPIRED[api_version]))
    client = make_client(api_version)
    client.upload_file(str(src), "/f.bin")
    assert emulator.stats.faults_fired == 1
    check_stored(client, emulator, "/f.bin", src)
    emulator.add_fault(FaultRule(op=OPEN_OP[api_version], times=2, **EXPIRED[api_version]))
    with pytest.raises(CosSignatureExpiredError):  # expired again right after re-signing: not a loop
        client.upload_file(str(src), "/g.bin")
    assert emulator.stats.faults_fired == 3
    check_no_object(emulator, "/g.bin")


def test_server_gone_is_a_transport_error(
    make_client: Make, emulator: CosEmulator, src: Path, api_version: str
) -> None:
    url = emulator.url
    emulator.stop()
    client = make_client(api_version, url=url)
    with pytest.raises(CosTransportError) as info:
        client.upload_file(str(src), "/f.bin")
    assert info.value.__cause__ is not None  # converted at the transport boundary, `from e`


def test_session_lost_midway(make_client: Make, emulator: CosEmulator, src: Path, api_version: str) -> None:
    """Someone discards the open upload mid-way (JSON: deletes the path; xml: aborts the UploadId, so the
    next parts and Complete answer NoSuchUpload): the engine opens another and completes the right content."""
    emulator.add_fault(FaultRule(op=DATA_OP[api_version], delay=0.02, times=None))
    client = make_client(api_version, config=small_config(max_workers=2))
    killer = make_client(api_version)
    fired = threading.Event()

    def on_progress(event: ProgressEvent) -> None:
        if event.bytes_done >= MiB and not fired.is_set():
            fired.set()
            discard_open_upload(killer, "/f.bin")

    client.upload_file(str(src), "/f.bin", progress=on_progress)
    assert fired.is_set()
    check_stored(client, emulator, "/f.bin", src)
    if client.xml:
        assert emulator.stats.requests["AbortMultipartUpload"] == 1
        assert emulator.stats.requests["InitiateMultipartUpload"] == 2  # the lost upload was replaced
        assert client.list_uploads("/f.bin") == []


def test_emulator_restarted_mid_upload(make_client: Make, emulator: CosEmulator, src: Path, api_version: str) -> None:
    emulator.add_fault(FaultRule(op=DATA_OP[api_version], delay=0.02, times=None))
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
        emulator.add_fault(FaultRule(op=DATA_OP[api_version], delay=0.02, times=None))
        restarted.set()

    def on_progress(event: ProgressEvent) -> None:
        if event.bytes_done >= MiB and not hasattr(on_progress, "done"):
            on_progress.done = True  # type: ignore[attr-defined]
            threading.Thread(target=restart).start()

    client.upload_file(str(src), "/f.bin", progress=on_progress)
    assert restarted.wait(10)
    check_stored(client, emulator, "/f.bin", src)


def test_file_modified_during_upload(
    make_client: Make, emulator: CosEmulator, src: Path, api_version: str, tmp_path: Path
) -> None:
    store = LocalCheckpointStore(tmp_path / "ckpt")
    emulator.add_fault(FaultRule(op=DATA_OP[api_version], delay=0.02, times=None))
    client = make_client(api_version, config=small_config(max_workers=2))
    modified = threading.Event()

    def on_progress(event: ProgressEvent) -> None:
        if event.bytes_done >= MiB and not modified.is_set():
            modified.set()
            with open(src, "r+b") as f:
                f.seek(10)
                f.write(b"CHANGED")

    with pytest.raises(CosFileChangedError):
        client.upload_file(str(src), "/f.bin", progress=on_progress, checkpoint_store=store)
    assert modified.is_set()
    check_no_object(emulator, "/f.bin")
    assert list((tmp_path / "ckpt").glob("*.json")) == []
    if client.xml:
        assert client.list_uploads("/f.bin") == []  # cannot be resumed with this content: aborted


# ---------------------------------------------------------------------------------------------- proxy faults


def test_connection_reset_mid_slice(make_client: Make, emulator: CosEmulator, src: Path, api_version: str) -> None:
    with FaultProxy(emulator.url) as proxy:
        proxy.add(ProxyFault("reset", nth=2, match=DATA_MARK[api_version], after_bytes=200 * KiB, times=2))
        events: list[ProgressEvent] = []
        client = make_client(api_version, url=proxy.url)
        client.upload_file(str(src), "/f.bin", progress=events.append)
        assert proxy.faults_fired == 2
        assert any(e.bytes_delta < 0 for e in events)  # the reset slice's bytes were rewound
        assert events[-1].bytes_done == SIZE
        check_stored(client, emulator, "/f.bin", src)


def test_stalled_server_read_timeout(make_client: Make, emulator: CosEmulator, src: Path, api_version: str) -> None:
    with FaultProxy(emulator.url) as proxy:
        proxy.add(ProxyFault("stall", nth=1, match=DATA_MARK[api_version], stall_seconds=5))
        client = make_client(api_version, url=proxy.url, config=small_config(read_timeout=0.5))
        client.upload_file(str(src), "/f.bin")
        assert proxy.faults_fired == 1
        check_stored(client, emulator, "/f.bin", src)


#: An answer with a body to cut in half: JSON's slice answers; xml's UploadPart answers have none, so
#: Complete's is cut: the retried Complete then finds the upload gone (NoSuchUpload) and the engine confirms
#: by HeadObject that the object is this file.
TRUNCATED = {"v1": DATA_MARK["v1"], "v2": DATA_MARK["v2"], "xml": b"POST /f.bin?uploadId="}


def test_truncated_answer(make_client: Make, emulator: CosEmulator, src: Path, api_version: str) -> None:
    with FaultProxy(emulator.url) as proxy:
        proxy.add(ProxyFault("truncate", nth=1, match=TRUNCATED[api_version], times=2))
        client = make_client(api_version, url=proxy.url)
        client.upload_file(str(src), "/f.bin")
        assert proxy.faults_fired == 2
        if client.xml:  # the first Complete merged; the two after it found the upload gone
            assert emulator.stats.requests["CompleteMultipartUpload"] == 3
        check_stored(client, emulator, "/f.bin", src)


#: What is sent again after one data request was corrupted on the wire. xml: UploadPart answers the CRC-64
#: of the bytes COS received, compared with the one computed while reading the part: only that part goes
#: again. JSON has no per-slice checksum: the corruption shows at completion (-174, the SHA-1 of the
#: session's bytes is not the file's), so that session is discarded and the whole file sent again, once.
RESENT_AFTER_CORRUPTION = {"v1": SIZE, "v2": SIZE, "xml": PART["xml"]}


def test_data_corrupted_on_the_wire_is_sent_again(
    make_client: Make, emulator: CosEmulator, src: Path, api_version: str
) -> None:
    second = PART[api_version]  # the second slice / part
    with FaultProxy(emulator.url) as proxy:
        proxy.add(ProxyFault("corrupt", match=data_request_at(api_version, second), after_bytes=100 * KiB))
        client = make_client(api_version, url=proxy.url)
        result = client.upload_file(str(src), "/f.bin")
        assert proxy.faults_fired == 1
        (corrupted,) = [r for r in proxy.records if r.fault == "corrupt"]
        assert corrupted.flipped_at == 100 * KiB  # one byte of that body was inverted, as configured
        assert data_request_at(api_version, second) in corrupted.sample
        assert result.size == SIZE
        assert emulator.stats.slice_bytes == SIZE + RESENT_AFTER_CORRUPTION[api_version]
        check_stored(client, emulator, "/f.bin", src)


def test_simple_upload_corrupted_on_the_wire_is_sent_again(
    make_client: Make, emulator: CosEmulator, tmp_path: Path, api_version: str
) -> None:
    """Below the slice threshold: JSON's op=upload answers -174 (its ``sha`` is not that of the bytes
    received; nothing is stored), xml's PutObject the CRC-64 of what it stored: either way sent again."""
    small = tmp_path / "small.bin"
    write_file(small, 300 * KiB)
    mark = b"PUT /f.bin " if api_version == "xml" else b'name="filecontent"'
    with FaultProxy(emulator.url) as proxy:
        proxy.add(ProxyFault("corrupt", match=mark, after_bytes=10 * KiB))
        client = make_client(api_version, url=proxy.url)
        result = client.upload_file(str(small), "/f.bin")
        assert proxy.faults_fired == 1
        assert [r.flipped_at for r in proxy.records if r.fault == "corrupt"] == [10 * KiB]
        assert result.method == "simple"
        check_stored(client, emulator, "/f.bin", small)


def test_xml_put_object_corrupted_on_every_try_stores_nothing(
    make_client: Make, emulator: CosEmulator, tmp_path: Path
) -> None:
    """xml only: PutObject carries Content-MD5, so COS refuses a body changed on the way (BadDigest) instead
    of storing it; retried like any transient failure, and when every try is corrupted the upload fails
    with a typed error and nothing - neither wrong bytes nor an earlier object - is replaced."""
    small = tmp_path / "small.bin"
    write_file(small, 300 * KiB)
    earlier = tmp_path / "earlier.bin"
    write_file(earlier, 200 * KiB, seed=3)
    client = make_client("xml")
    client.upload_file(str(earlier), "/f.bin")
    tries = FAST_RETRY.max_attempts
    with FaultProxy(emulator.url) as proxy:
        proxy.add(ProxyFault("corrupt", match=b"PUT /f.bin ", after_bytes=10 * KiB, times=tries + 5))
        with pytest.raises(CosIntegrityError, match="BadDigest") as info:
            make_client("xml", url=proxy.url).upload_file(str(small), "/f.bin")
        assert proxy.faults_fired == tries  # every attempt went out corrupted, and was refused
    assert str(info.value.path).lstrip("/") == "f.bin"  # the key
    check_stored(client, emulator, "/f.bin", earlier)  # the object before the upload, untouched


def test_no_secret_or_signature_in_debug_logs(
    make_client: Make, emulator: CosEmulator, src: Path, api_version: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Every Authorization value the client put on the wire (seen by the proxy) and the SecretKey are absent
    from the DEBUG logs of an upload with a retry, and from the client's repr."""
    from airflow_provider_cos.emulator import DEMO
    from airflow_provider_cos.transfer import LoggingProgress

    emulator.add_fault(FaultRule(op=DATA_OP[api_version], status=503, times=1))
    with FaultProxy(emulator.url) as proxy, caplog.at_level(logging.DEBUG):
        logging.getLogger("urllib3").setLevel(logging.DEBUG)
        client = make_client(api_version, url=proxy.url)
        client.upload_file(str(src), "/f.bin", progress=LoggingProgress(logging.getLogger("t"), 0.0))
        client.delete("/f.bin")
        heads = [r.sample.split(b"\r\n\r\n", 1)[0].decode("latin-1") for r in proxy.records]
    assert emulator.stats.faults_fired == 1
    signatures = {m.group(1).strip() for h in heads for m in re.finditer(r"(?im)^authorization:(.*)$", h)}
    assert len(signatures) > 5  # every request was signed, afresh
    if client.xml:  # the part that is a secret of its own; the rest (q-ak, key time) is not
        signatures |= {s.rsplit("q-signature=", 1)[1] for s in signatures}
    text = "\n".join(r.getMessage() + repr(r.args) for r in caplog.records) + caplog.text
    assert "urllib3" in caplog.text  # urllib3's debug lines were captured ...
    assert DEMO.secret_key not in text  # ... and hold neither the key ...
    for signature in signatures:
        assert signature not in text  # ... nor any Authorization value
    assert "Authorization" not in text
    assert DEMO.secret_key not in repr(client)


# ---------------------------------------------------------------------------------------------- one API only


def test_json_sha_mismatch_twice_is_a_typed_error_and_the_next_try_repairs(
    make_client: Make, emulator: CosEmulator, src: Path, json_api_version: str
) -> None:
    """JSON only (xml resends a mismatched part under the retry policy, see above): the second slice is
    corrupted in the first session and again in the one that replaces it. A second -174 in a row is not
    taken for chance: a typed error, no object. The session it leaves holds wrong bytes under this file's
    SHA-1; the next try must not "resume" it into the same -174 forever, but replace it."""
    api = json_api_version
    mark = data_request_at(api, PART[api])
    with FaultProxy(emulator.url) as proxy:
        proxy.add(ProxyFault("corrupt", match=mark, times=2))
        with pytest.raises(CosIntegrityError) as info:
            make_client(api, url=proxy.url).upload_file(str(src), "/f.bin")
        assert proxy.faults_fired == 2
    assert info.value.code == -174 and info.value.path == "/f.bin"
    check_no_object(emulator, "/f.bin")
    client = make_client(api)
    result = client.upload_file(str(src), "/f.bin")
    assert result.bytes_sent == SIZE and not result.resumed
    check_stored(client, emulator, "/f.bin", src)
    if api == "v2":  # the next try found that session (-4019, list), finished it into -174 again, replaced it
        assert emulator.stats.requests["upload_slice_list"] == 1 and emulator.stats.requests["delete"] == 2


def test_xml_error_inside_completes_200_is_an_error_and_retried(
    make_client: Make, emulator: CosEmulator, src: Path
) -> None:
    """xml only: COS answers a late merge failure of CompleteMultipartUpload as an <Error> inside a 200."""
    emulator.add_fault(FaultRule(op="CompleteMultipartUpload", status=200, xml_code="InternalError", times=1))
    client = make_client("xml")
    client.upload_file(str(src), "/f.bin")
    assert emulator.stats.faults_fired == 1
    assert emulator.stats.requests["CompleteMultipartUpload"] == 2
    check_stored(client, emulator, "/f.bin", src)
    emulator.add_fault(FaultRule(op="CompleteMultipartUpload", status=200, xml_code="InternalError", times=None))
    with pytest.raises(CosServerError) as info:
        client.upload_file(str(src), "/g.bin")
    assert info.value.error_code == "InternalError" and client.head("/g.bin") is None


def test_xml_request_time_too_skewed_resigns_with_the_servers_clock(
    make_client: Make, emulator: CosEmulator, src: Path
) -> None:
    """xml only: the XML signature carries our clock's KeyTime and COS refuses one an hour off; the JSON
    signatures' expiry is checked as -96 above."""
    client = make_client("xml", clock=lambda: time.time() + 3600)  # our clock is an hour fast
    client.upload_file(str(src), "/f.bin")
    check_stored(client, emulator, "/f.bin", src)
    requests = emulator.stats.requests
    assert requests["ListMultipartUploads"] == 2  # the first request was refused once, then re-signed
    assert requests["InitiateMultipartUpload"] == 1 and requests["UploadPart"] == 4  # and no other


# JSON sessions: v2 lists an unfinished session by path, and a session of other content is another writer's
# or our own leftover by the checkpoint's record. The xml counterparts (ListMultipartUploads + ListParts, an
# upload of other content left alone, a checkpoint's upload with a changed part) are in test_multipart.py.


def test_v2_unfinished_upload_is_listed_and_completed(make_client: Make, emulator: CosEmulator, src: Path) -> None:
    """-4019 → upload_slice_list → only the missing slices → finish (no local checkpoint needed)."""
    emulator.add_fault(FaultRule(op="upload_slice_finish", status=400, code=-61, times=1))
    first = make_client("v2", config=small_config(retry=small_config().retry.never()))
    with pytest.raises(CosError):
        first.upload_file(str(src), "/f.bin")
    assert emulator.stats.slice_bytes == SIZE
    second = make_client("v2")
    result = second.upload_file(str(src), "/f.bin")
    assert result.resumed and result.bytes_sent == 0
    assert emulator.stats.slice_bytes == SIZE  # nothing re-sent
    assert emulator.stats.requests.get("upload_slice_list") == 1
    check_stored(second, emulator, "/f.bin", src)


def test_v2_listed_session_of_other_content_is_left_alone(
    make_client: Make, emulator: CosEmulator, tmp_path: Path
) -> None:
    """A session of other content that this upload did not open may be another writer's live upload:
    a typed conflict naming it, never a delete (issue 7 §2). Once the path is cleared, the upload goes."""
    other = tmp_path / "other.bin"
    write_file(other, SIZE, seed=9)
    emulator.add_fault(FaultRule(op="upload_slice_finish", status=400, code=-61, times=1))
    first = make_client("v2", config=small_config(retry=small_config().retry.never()))
    with pytest.raises(CosError):
        first.upload_file(str(other), "/f.bin")
    mine = tmp_path / "mine.bin"
    write_file(mine, SIZE, seed=10)
    client = make_client("v2")
    with pytest.raises(CosUploadConflictError, match="another upload of different content is in progress"):
        client.upload_file(str(mine), "/f.bin")
    assert emulator.stats.requests.get("delete", 0) == 0
    check_no_object(emulator, "/f.bin")
    client.delete("/f.bin")
    result = client.upload_file(str(mine), "/f.bin")
    assert not result.resumed and result.bytes_sent == SIZE
    check_stored(client, emulator, "/f.bin", mine)


def test_own_leftover_session_of_earlier_content_is_replaced(
    make_client: Make, emulator: CosEmulator, tmp_path: Path, json_api_version: str
) -> None:
    """The checkpoint names the session this upload opened for the file's earlier content: that one is ours
    to replace after the file was rewritten."""
    api = json_api_version
    store = LocalCheckpointStore(tmp_path / "ckpt")
    src = tmp_path / "f.bin"
    write_file(src, SIZE, seed=9)
    emulator.add_fault(FaultRule(op=DATA_OP[api], status=400, code=-61, times=1))
    first = make_client(api, config=small_config(retry=small_config().retry.never()))
    with pytest.raises(CosError):
        first.upload_file(str(src), "/f.bin", checkpoint_store=store)
    assert emulator.stats.faults_fired == 1
    sha1 = write_file(src, SIZE, seed=10)
    result = make_client(api).upload_file(str(src), "/f.bin", checkpoint_store=store)
    assert result.sha1 == sha1 and not result.resumed
    check_stored(make_client(api), emulator, "/f.bin", src)
