"""CheckpointStore protocol and the atomic local store."""

from __future__ import annotations

import json
import os
from pathlib import Path

from airflow_provider_cos.transfer import CheckpointStore, LocalCheckpointStore, UploadCheckpoint
from airflow_provider_cos.transfer.checkpoint import checkpoint_key


def test_round_trip_and_delete(tmp_path: Path) -> None:
    store = LocalCheckpointStore(tmp_path / "ckpt")
    assert isinstance(store, CheckpointStore)
    assert store.load("k") is None
    store.save("k", {"a": 1, "session": "s"})
    assert store.load("k") == {"a": 1, "session": "s"}
    store.save("k", {"a": 2})
    assert store.load("k") == {"a": 2}
    store.delete("k")
    store.delete("k")  # idempotent
    assert store.load("k") is None


def test_writes_are_atomic_and_leave_no_temp_files(tmp_path: Path) -> None:
    store = LocalCheckpointStore(tmp_path)
    for i in range(20):
        store.save("key/with/slashes and spaces", {"i": i})
    names = os.listdir(tmp_path)
    assert len(names) == 1 and names[0].endswith(".json") and not names[0].startswith(".ckpt-")


def test_torn_or_foreign_file_reads_as_absent(tmp_path: Path) -> None:
    store = LocalCheckpointStore(tmp_path)
    store.save("k", {"x": 1})
    (path,) = list(tmp_path.iterdir())
    path.write_text("{not json")
    assert store.load("k") is None
    path.write_text(json.dumps([1, 2]))
    assert store.load("k") is None


def test_default_directory_from_env(tmp_path: Path, monkeypatch: object) -> None:
    import pytest

    mp = pytest.MonkeyPatch()
    try:
        mp.setenv("COS_CHECKPOINT_DIR", str(tmp_path / "env"))
        assert LocalCheckpointStore().directory == str(tmp_path / "env")
    finally:
        mp.undo()


def test_checkpoint_model_matches_and_rejects() -> None:
    ck = UploadCheckpoint(
        local_path="/a",
        size=10,
        mtime_ns=5,
        dev=3,
        ino=4,
        ctime_ns=6,
        sha1="a" * 40,
        api_version="v1",
        bucket="b",
        cos_path="/x",
        session="s",
        slice_size=1024,
        earlier_session="e",
        earlier_sha1="b" * 40,
    )
    again = UploadCheckpoint.from_dict(json.loads(json.dumps(ck.to_dict())))
    assert again == ck
    assert ck.same_destination(local_path="/a", api_version="v1", bucket="b", cos_path="/x")
    assert not ck.same_destination(local_path="/a", api_version="v2", bucket="b", cos_path="/x")
    assert not ck.same_destination(local_path="/a", api_version="v1", bucket="b", cos_path="/y")
    # content is judged by the SHA-1 computed now, never by size and times
    assert ck.same_content(size=10, sha1="A" * 40)
    assert not ck.same_content(size=10, sha1="c" * 40)
    assert not ck.same_content(size=11, sha1="a" * 40)
    assert ck.own_sessions == {"s", "e"}
    assert UploadCheckpoint.from_dict({"version": 999}) is None
    assert UploadCheckpoint.from_dict({**ck.to_dict(), "version": 1}) is None  # the format before ctime/inode
    assert UploadCheckpoint.from_dict({**ck.to_dict(), "size": "x"}) is None
    assert UploadCheckpoint.from_dict({**ck.to_dict(), "sha1": "short"}) is None


def test_key_depends_on_every_part(tmp_path: Path) -> None:
    base = ("http://e", "1", "b", "/p", str(tmp_path / "f"))
    k = checkpoint_key(*base)
    for i in range(5):
        other = list(base)
        other[i] = other[i] + "x"
        assert checkpoint_key(*other) != k
    assert checkpoint_key(*base) == k
