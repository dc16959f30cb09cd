"""CosSliceUploadOperator: bad input, resume across Airflow retries, XCom, link, asset, lineage."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_cos.emulator import DEMO
from airflow_provider_cos.hooks.cos import CosHook
from airflow_provider_cos.operators.cos import CosSliceUploadOperator
from airflow_provider_cos.transfer import ProgressEvent
from tests.airflow.conftest import MiB, conn_json, make_file, run_dag, task_states

START = pendulum.datetime(2024, 1, 1, tz="UTC")


def _op(**kwargs: Any) -> CosSliceUploadOperator:
    kwargs.setdefault("task_id", "up")
    return CosSliceUploadOperator(**kwargs)


def _no_upload_happened(emulator: Any) -> None:
    requests = emulator.stats.requests
    assert not any(op.startswith("upload") for op in requests), requests
    assert emulator.stats.slice_bytes == 0


@pytest.mark.parametrize(
    ("local", "cos_path", "message"),
    [
        ("missing", "/a.bin", "does not exist"),
        ("dir", "/a.bin", "is a directory"),
        ("file", "/folder/", "ends with '/'"),
        ("file", "/bad*name.bin", "forbidden character"),
        ("file", "/a//b.bin", "empty segment"),
        ("fifo", "/a.bin", "not a regular file"),
    ],
)
def test_bad_local_input_fails_before_any_request(
    cos_conns: Any, tmp_path: Path, local: str, cos_path: str, message: str
) -> None:
    path = {"missing": tmp_path / "nope.bin", "dir": tmp_path}.get(local, tmp_path / "f.bin")
    if local == "file":
        make_file(path, 10)
    if local == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)
    with pytest.raises(AirflowFailException, match=message):
        _op(local_path=str(path), cos_path=cos_path).execute({})
    assert cos_conns.stats.requests == {}


def _as_unprivileged(fn: Any) -> str:
    """Run ``fn`` in a forked child that dropped root (uid/gid nobody); return what it returns or raises.

    Root reads any file, so the unreadable-file case needs a process without CAP_DAC_OVERRIDE. The child
    only runs ``fn`` (modules are already imported) and exits at once.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_end)
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            out = f"returned {fn()!r}"
        except BaseException as exc:
            out = f"{type(exc).__name__}: {exc}"
        os.write(write_end, out.encode()[:4000])
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        result = fh.read().decode()
    os.waitpid(pid, 0)
    return result


def test_unreadable_local_file_fails_before_any_request(cos_conns: Any) -> None:
    import shutil
    import tempfile

    directory = Path(tempfile.mkdtemp(prefix="cos-unreadable-"))
    try:
        directory.chmod(0o755)
        path = make_file(directory / "secret.bin", 10)
        path.chmod(0)
        op = _op(local_path=str(path), cos_path="/a.bin")
        if os.geteuid() == 0:
            outcome = _as_unprivileged(op.validate_local_inputs)
        else:
            try:
                outcome = f"returned {op.validate_local_inputs()!r}"
            except AirflowFailException as exc:
                outcome = f"AirflowFailException: {exc}"
        assert outcome.startswith("AirflowFailException: "), outcome
        assert f"local_path {str(path)!r} is not readable: Permission denied" in outcome
        assert cos_conns.stats.requests == {}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_unknown_bucket_and_bad_credentials_fail_clearly(
    cos_conns: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_file(tmp_path / "f.bin", 3 * MiB)
    with pytest.raises(AirflowFailException, match=r"Bucket 'nosuchbucket' .*does not exist"):
        _op(local_path=str(src), cos_path="/d/f.bin", bucket="nosuchbucket").execute({})
    monkeypatch.setenv("AIRFLOW_CONN_COS_BADKEY", conn_json(cos_conns.url, secret_key="wrong"))
    with pytest.raises(AirflowFailException, match="rejected the credentials"):
        _op(local_path=str(src), cos_path="/d/f.bin", cos_conn_id="cos_badkey").execute({})
    with pytest.raises(AirflowFailException, match="bucket name 'Bad_Bucket' is invalid"):
        _op(local_path=str(src), cos_path="/d/f.bin", bucket="Bad_Bucket").execute({})
    monkeypatch.setenv("AIRFLOW_CONN_COS_NOAPPID", conn_json(cos_conns.url, app_id=""))
    with pytest.raises(AirflowFailException, match="'app_id' is required"):
        _op(local_path=str(src), cos_path="/d/f.bin", cos_conn_id="cos_noappid").execute({})
    _no_upload_happened(cos_conns)
    assert CosHook().stat("/d/f.bin") is None


def test_overwrite_false_refuses_an_existing_object(cos_conns: Any, tmp_path: Path) -> None:
    CosHook().upload_file(str(make_file(tmp_path / "old.bin", 1000, seed=1)), "/o/f.bin")
    src = make_file(tmp_path / "f.bin", 1000, seed=2)  # other content: identical content would be a no-op
    with pytest.raises(AirflowFailException, match="already exists and overwrite=False"):
        _op(local_path=str(src), cos_path="/o/f.bin", overwrite=False).execute({})


def test_asset_outlet_only_when_static() -> None:
    op = _op(local_path="/x", cos_path="/a/b.bin", bucket="examplebucket", app_id="1250000000")
    assert [a.uri for a in op.outlets] == ["cos://examplebucket-1250000000/a/b.bin"]
    # not known at parse time: an alias, to which the run adds the object's Asset
    templated = _op(local_path="/x", cos_path="/a/{{ ds }}.bin", bucket="examplebucket", app_id=1).outlets
    assert [type(a).__name__ for a in templated] == ["AssetAlias"]
    with DAG("d_alias", schedule=None, start_date=START, catchup=False):
        in_dag = _op(local_path="/x", cos_path="/a/b.bin")
    assert [a.name for a in in_dag.outlets] == ["cos-upload:d_alias.up"]
    assert _op(local_path="/x", cos_path="/a/b.bin", bucket="b", app_id="1", emit_asset=False).outlets == []


def test_openlineage_facets_when_the_provider_is_installed(cos_conns: Any) -> None:
    pytest.importorskip("airflow.providers.openlineage")  # a dev dependency: installed in the test env
    op = _op(local_path="/data/x.bin", cos_path="/a/b.bin")
    lineage = op.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("cos://examplebucket-1250000000", "a/b.bin")]
    assert lineage.inputs[0].name == "/data/x.bin"
    assert lineage.inputs[0].namespace.startswith("file://")


def test_openlineage_is_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without the OpenLineage provider (import fails) the operator still works and reports no lineage.
    monkeypatch.setitem(sys.modules, "airflow.providers.openlineage.extractors", None)
    op = _op(local_path="/x", cos_path="/a/b.bin")
    assert op.get_openlineage_facets_on_complete(None) is None
    assert op.get_openlineage_facets_on_start() is None


class _KilledOnce(CosSliceUploadOperator):
    """Simulates a task killed mid-upload on try 1: on_kill() fires once ``kill_after`` bytes are stored."""

    kill_after = 0

    def progress_callback(self) -> Any:
        inner = super().progress_callback()
        first_try = self.__dict__.setdefault("_first", [True])

        def callback(event: ProgressEvent) -> None:
            inner(event)
            if first_try[0] and event.bytes_done >= self.kill_after:
                first_try[0] = False
                self.on_kill()

        return callback

    def execute(self, context: Any) -> str:
        type(self).tries = getattr(type(self), "tries", 0) + 1
        if type(self).tries > 1:
            self.__dict__["_first"] = [False]
        return super().execute(context)


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("conn_id", ["cos_default", "cos_v2"])
def test_retry_resumes_the_upload(
    cos_conns: Any, tmp_path: Path, conn_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    local_checkpoints = tmp_path / "local-checkpoints"
    monkeypatch.setenv("COS_CHECKPOINT_DIR", str(local_checkpoints))
    size = 6 * MiB
    src = make_file(tmp_path / "big.bin", size, seed=11)
    _KilledOnce.tries = 0
    _KilledOnce.kill_after = 3 * MiB
    with DAG(f"cos_test_resume_{conn_id}", schedule=None, start_date=START, catchup=False) as dag:
        _KilledOnce(
            task_id="upload",
            cos_conn_id=conn_id,
            local_path=str(src),
            cos_path="/resume/big.bin",
            max_workers=1,
            retries=1,
            retry_delay=pendulum.duration(seconds=0),
        )
    run = run_dag(dag)
    assert task_states(run) == {"upload": "success"}
    ti = run.get_task_instances()[0]
    assert ti.try_number == 2 and _KilledOnce.tries == 2
    assert ti.xcom_pull(task_ids="upload") == f"/{DEMO.appid}/{DEMO.bucket}/resume/big.bin"
    # The server received each byte about once: try 2 sent only what try 1 had not stored.
    total = cos_conns.stats.slice_bytes
    assert size <= total <= size + MiB, total
    assert not local_checkpoints.exists()  # resume state went through context["task_state_store"]
    stat = CosHook(conn_id).stat("/resume/big.bin")
    assert stat is not None and stat["complete"] and int(stat["filesize"]) == size


class _DiesAfterHashPass(CosSliceUploadOperator):
    """Try 1 dies right after the hash pass (its first checkpoint is in the task state store); try 2
    starts after the file was rewritten with other content of the same size and mtime."""

    tries = 0
    new_sha1 = ""

    def checkpoint_store(self, context: Any) -> Any:
        store = super().checkpoint_store(context)
        if type(self).tries > 1:
            return store

        class Dying:
            load, delete = store.load, store.delete

            def save(self, key: str, state: dict[str, Any]) -> None:
                store.save(key, state)
                raise RuntimeError("killed right after the hash pass")

        return Dying()

    def execute(self, context: Any) -> str:
        type(self).tries += 1
        if type(self).tries == 2:
            path = Path(self.local_path)
            before = path.stat()
            make_file(path, before.st_size, seed=99)
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
            type(self).new_sha1 = hashlib.sha1(path.read_bytes()).hexdigest()
        return super().execute(context)


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("conn_id", ["cos_default", "cos_v2"])
def test_retry_after_the_file_was_rewritten_uploads_the_new_content(
    cos_conns: Any, tmp_path: Path, conn_id: str
) -> None:
    """Issue 7 §1 through the task state store: the first content also exists elsewhere in the bucket,
    the retry must not instant-upload it because the checkpoint still holds its SHA-1."""
    src = make_file(tmp_path / "big.bin", 3 * MiB + 17, seed=5)
    old_sha1 = hashlib.sha1(src.read_bytes()).hexdigest()
    CosHook(conn_id).upload_file(str(src), "/elsewhere/old.bin")
    _DiesAfterHashPass.tries = 0
    with DAG(f"cos_test_rewritten_{conn_id}", schedule=None, start_date=START, catchup=False) as dag:
        _DiesAfterHashPass(
            task_id="upload",
            cos_conn_id=conn_id,
            local_path=str(src),
            cos_path="/r/big.bin",
            retries=1,
            retry_delay=pendulum.duration(seconds=0),
        )
    run = run_dag(dag)
    assert task_states(run) == {"upload": "success"} and _DiesAfterHashPass.tries == 2
    new_sha1 = _DiesAfterHashPass.new_sha1
    assert new_sha1 and new_sha1 != old_sha1
    ti = run.get_task_instances()[0]
    assert ti.xcom_pull(task_ids="upload", key="sha1") == new_sha1
    assert ti.xcom_pull(task_ids="upload", key="instant") is False
    stat = CosHook(conn_id).stat("/r/big.bin")
    assert stat is not None and stat["sha"] == new_sha1


@pytest.mark.usefixtures("airflow_db")
def test_xcom_link_and_asset_event(cos_conns: Any, tmp_path: Path) -> None:
    from airflow_provider_cos.links import CosObjectLink

    src = make_file(tmp_path / "s.bin", 1500)
    with DAG("cos_test_xcom", schedule=None, start_date=START, catchup=False) as dag:
        CosSliceUploadOperator(
            task_id="upload", local_path=str(src), cos_path="/x/s.bin", bucket=DEMO.bucket, app_id=DEMO.appid
        )
    run = run_dag(dag)
    assert task_states(run) == {"upload": "success"}
    ti = run.get_task_instances()[0]
    values = {
        key: ti.xcom_pull(task_ids="upload", key=key)
        for key in ("return_value", "access_url", "source_url", "url", "sha1", "size", "instant")
    }
    assert values["return_value"] == f"/{DEMO.appid}/{DEMO.bucket}/x/s.bin"
    assert values["size"] == 1500 and len(values["sha1"]) == 40 and values["instant"] is False
    assert values["access_url"] and values["source_url"] and values["url"]
    assert ti.xcom_pull(task_ids="upload", key=CosObjectLink().xcom_key).startswith(cos_conns.url)  # test_links.py

    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(select(AssetEvent).where(AssetEvent.source_dag_id == "cos_test_xcom")).all()
        assert [e.extra["resource_path"] for e in events] == [values["return_value"]]


def test_a_local_file_error_mid_upload_names_the_file(cos_conns: Any) -> None:
    """/proc files pass the regular-file check but hold more bytes than stat says: the engine's typed error
    reaches the task with the file's name (its str(), not only its message)."""
    with pytest.raises(AirflowFailException, match=r"/proc/self/status"):
        _op(local_path="/proc/self/status", cos_path="/p/status.bin", create_parents=True).execute({})


def test_another_writers_session_fails_the_try_naming_the_conflict(
    cos_conns: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A v2 session of other content at the path (here qcloud-cos-py3's, which declares no SHA-1) with
    overwrite=False: the try fails saying what holds the path, not that a retry resumes it."""
    from airflow.sdk.exceptions import AirflowException

    from tests.transfer.test_conflicts import _foreign_session

    _foreign_session(cos_conns, tmp_path, monkeypatch, 2 * MiB)
    src = make_file(tmp_path / "mine.bin", 2 * MiB, seed=5)
    with pytest.raises(AirflowException) as info:
        _op(local_path=str(src), cos_path="/q/f.bin", cos_conn_id="cos_v2", overwrite=False).execute({})
    text = str(info.value)
    assert "did not start" in text and "unfinished upload at /q/f.bin" in text and "overwrite=True" in text, text
    assert "resumes it" not in text
