"""Two writers, one path (issue 7 §2) and sessions left by other clients (§3), against the emulator.

Writers run in threads of this process, each with its own client. They are synchronised on events only:
a writer that starts sending waits in its progress callback until the other one has started sending or
has finished, so neither can complete before the other has met the path (the interleaving the issue saw).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cos.emulator import DEMO, CosEmulator, FaultRule
from airflow_provider_cos.protocol.errors import CosUploadConflictError
from airflow_provider_cos.protocol.messages import CosTarget, StatInfo
from airflow_provider_cos.protocol.signing import Credentials
from airflow_provider_cos.transfer import CosClient, ProgressEvent, UploadResult
from tests.transfer.conftest import MiB, small_config, stored_sha1, write_file

Make = Callable[..., CosClient]
SIZE = 2 * MiB + 333
WAIT = 30.0  # seconds: only a bound for a broken run, never a synchronisation


class Writer:
    """One uploader in a thread; ``started`` once its first bytes leave, ``done`` once it returned."""

    def __init__(self, client: CosClient, src: Path, sha1: str, cos_path: str) -> None:
        self.client, self.src, self.sha1, self.cos_path = client, src, sha1, cos_path
        self.started = threading.Event()
        self.done = threading.Event()
        self.result: UploadResult | None = None
        self.error: BaseException | None = None
        self.hold: Callable[[], None] = lambda: None  # called once, at the first progress event
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _progress(self, event: ProgressEvent) -> None:
        if event.bytes_delta > 0 and not self.started.is_set():
            self.started.set()
            self.hold()

    def _run(self) -> None:
        try:
            self.result = self.client.upload_file(str(self.src), self.cos_path, progress=self._progress)
        except BaseException as e:  # reported to the test
            self.error = e
        finally:
            self.done.set()

    def start(self) -> Writer:
        self._thread.start()
        return self

    def join(self) -> None:
        self._thread.join(WAIT)
        assert not self._thread.is_alive(), "writer did not finish"


def _until(event: threading.Event) -> None:
    assert event.wait(WAIT), "synchronisation event never came"


def _either(*events: threading.Event) -> None:
    """Wait until one of ``events`` is set (no polling sleep: a shared condition)."""
    flag = threading.Event()
    for e in events:
        _chain(e, flag)
    _until(flag)


def _chain(source: threading.Event, target: threading.Event) -> None:
    def relay() -> None:
        if source.wait(WAIT):
            target.set()

    threading.Thread(target=relay, daemon=True).start()


def _files(tmp_path: Path) -> tuple[tuple[Path, str], tuple[Path, str]]:
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    return (a, write_file(a, SIZE, seed=21)), (b, write_file(b, SIZE, seed=22))


def _assert_conflict(error: BaseException | None, cos_path: str) -> None:
    assert isinstance(error, CosUploadConflictError), repr(error)
    assert "another upload of different content is in progress" in str(error)
    assert cos_path in str(error)


def test_second_writer_of_other_content_gets_a_conflict_and_leaves_the_first_alone(
    make_client: Make, emulator: CosEmulator, tmp_path: Path, api_version: str
) -> None:
    (a_src, a_sha), (b_src, b_sha) = _files(tmp_path)
    a = Writer(make_client(api_version), a_src, a_sha, "/w/f.bin")
    b = Writer(make_client(api_version), b_src, b_sha, "/w/f.bin")
    a.hold = lambda: _until(b.done)  # A holds a live session with bytes in flight until B has answered
    a.start()
    _until(a.started)
    b.start().join()
    _assert_conflict(b.error, "/w/f.bin")
    a.join()
    assert a.error is None and a.result is not None and a.result.sha1 == a_sha
    assert stored_sha1(emulator, "/w/f.bin") == a_sha
    assert emulator.stats.requests.get("delete", 0) == 0  # nobody deleted anybody's session


class _MeetAfterStat(CosClient):
    """Both writers pass their look at the path before either opens a session (the race of the issue)."""

    def __init__(self, barrier: threading.Barrier, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._barrier: threading.Barrier | None = barrier
        self.looked_at: StatInfo | str | None = "not yet"

    def stat(self, path: str, bucket: str | None = None) -> StatInfo | None:
        info = super().stat(path, bucket)
        if path.endswith("/"):  # the parent folder (create_parents), not the look at the object
            return info
        barrier, self._barrier = self._barrier, None
        if barrier is not None:
            self.looked_at = info
            barrier.wait(WAIT)
        return info


@pytest.mark.parametrize("existing", [False, True], ids=["new-path", "over-an-object"])
@pytest.mark.parametrize("trial", range(3))
def test_two_concurrent_writers_one_wins_the_other_gets_a_conflict(
    emulator: CosEmulator, tmp_path: Path, api_version: str, trial: int, existing: bool
) -> None:
    (a_src, a_sha), (b_src, b_sha) = _files(tmp_path)
    target = CosTarget(emulator.url, api_version, DEMO.appid, DEMO.bucket)  # type: ignore[arg-type]
    credentials = Credentials(DEMO.secret_id, DEMO.secret_key)
    if existing:  # an object of third content is there already (v1's stat then hides an unfinished upload)
        old = tmp_path / "old.bin"
        write_file(old, SIZE, seed=23)
        with CosClient(target=target, credentials=credentials, config=small_config()) as first:
            first.upload_file(str(old), f"/race/{trial}.bin")
    met = threading.Barrier(2) if api_version == "v1" else None  # v2 has no look before its init

    def client() -> CosClient:
        config = small_config(max_workers=2)
        if met is None:
            return CosClient(target=target, credentials=credentials, config=config)
        return _MeetAfterStat(met, target=target, credentials=credentials, config=config)

    a = Writer(client(), a_src, a_sha, f"/race/{trial}.bin")
    b = Writer(client(), b_src, b_sha, f"/race/{trial}.bin")
    a.hold = lambda: _either(b.started, b.done)
    b.hold = lambda: _either(a.started, a.done)
    try:
        for w in (a, b) if trial % 2 == 0 else (b, a):
            w.start()
        a.join()
        b.join()
    finally:
        a.client.close()
        b.client.close()
    winners = [w for w in (a, b) if w.error is None]
    losers = [w for w in (a, b) if w.error is not None]
    assert len(winners) == 1 and len(losers) == 1, [repr(w.error) for w in (a, b)]
    _assert_conflict(losers[0].error, f"/race/{trial}.bin")
    assert stored_sha1(emulator, f"/race/{trial}.bin") == winners[0].sha1
    assert emulator.stats.requests.get("delete", 0) == 0
    if met is not None:  # v1: both looked before either opened a session
        seen = [getattr(w.client, "looked_at", "?") for w in (a, b)]
        assert all(info is None or (isinstance(info, StatInfo) and info.complete) for info in seen), seen


# ---------------------------------------------------------------------------------------------- §3
qcloud = pytest.importorskip("qcloud_cos_py3")


def _foreign_session(emulator: CosEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    """qcloud-cos-py3 (no ``sha`` at init) starts a slice upload of ``size`` bytes and gives up at finish."""
    src = tmp_path / "foreign.bin"
    write_file(src, size, seed=31)
    bucket = qcloud.CosBucket(int(DEMO.appid), DEMO.secret_id, DEMO.secret_key, DEMO.bucket, region="gz")
    emulator.add_fault(FaultRule(op="upload_slice_finish", code=-61, times=None))
    with monkeypatch.context() as env:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            env.delenv(name, raising=False)
        env.setenv("HTTP_PROXY", emulator.url)
        env.setenv("http_proxy", emulator.url)
        assert bucket.create_folder("q")["code"] in (0, -178)
        answer = bucket.upload_slice_file(str(src), MiB, "f.bin", dir_name="q")
    emulator.clear_faults()
    assert "access_url" not in answer, answer  # it gave up: its session stays open at /q/f.bin
    assert emulator.stats.requests.get("upload_slice_finish", 0) >= 1


def test_session_without_sha_is_replaced_with_overwrite(
    make_client: Make, emulator: CosEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _foreign_session(emulator, tmp_path, monkeypatch, SIZE)
    mine = tmp_path / "mine.bin"
    sha1 = write_file(mine, SIZE, seed=32)
    client = make_client("v2")
    result = client.upload_file(str(mine), "/q/f.bin")
    assert result.sha1 == sha1 and not result.resumed
    assert stored_sha1(emulator, "/q/f.bin") == sha1
    # and again: nothing is left that blocks the path
    other = tmp_path / "other.bin"
    assert client.upload_file(str(other) if write_file(other, SIZE, seed=33) else "", "/q/f.bin").sha1


def test_session_without_sha_is_named_when_overwrite_is_off(
    make_client: Make, emulator: CosEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _foreign_session(emulator, tmp_path, monkeypatch, SIZE)
    mine = tmp_path / "mine.bin"
    write_file(mine, SIZE, seed=32)
    client = make_client("v2")
    with pytest.raises(CosUploadConflictError) as info:
        client.upload_file(str(mine), "/q/f.bin", insert_only=True)
    text = str(info.value)
    assert "declares no SHA-1" in text and "/q/f.bin" in text and "session " in text
    assert "overwrite=True" in text and "delete" in text
    assert stored_sha1(emulator, "/q/f.bin") is None
    client.delete("/q/f.bin")  # the clearing the message describes works
    assert client.upload_file(str(mine), "/q/f.bin", insert_only=True).sha1
