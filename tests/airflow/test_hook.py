"""CosHook against the emulator over real sockets."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cos.emulator import DEMO
from airflow_provider_cos.hooks.cos import CosHook
from airflow_provider_cos.protocol.errors import CosTransportError
from tests.airflow.conftest import MiB, conn_json, make_file
from tests.support.silentserver import SilentServer


@pytest.mark.parametrize("conn_id", ["cos_default", "cos_v2"])
def test_upload_stat_list_delete(cos_conns: Any, tmp_path: Path, conn_id: str) -> None:
    src = make_file(tmp_path / "a.bin", 3 * MiB + 123)
    hook = CosHook(conn_id)
    result = hook.upload_file(str(src), "/deep/er/a.bin")
    assert result.resource_path == f"/{DEMO.appid}/{DEMO.bucket}/deep/er/a.bin"
    assert result.size == src.stat().st_size
    assert result.slices_sent == 4

    stat = hook.stat("/deep/er/a.bin")
    assert stat is not None
    assert int(stat["filesize"]) == int(stat["filelen"]) == src.stat().st_size
    assert stat["sha"] == hashlib.sha1(src.read_bytes()).hexdigest()
    assert stat["complete"] is True and stat["access_url"]
    assert hook.exists("/deep/er/a.bin") and hook.is_upload_complete("/deep/er/a.bin")
    assert hook.stat("/deep/er/missing.bin") is None and not hook.exists("/deep/er/missing.bin")
    assert hook.stat("/deep/")["is_folder"] is True

    assert [e["name"] for e in hook.list("/deep/er/")] == ["a.bin"]
    assert hook.create_folder("/deep/other/") is True
    assert hook.create_folder("/deep/other/") is False
    assert sorted(e["name"] for e in hook.list("/deep/")) == ["er", "other"]

    hook.delete("/deep/er/a.bin")
    assert hook.stat("/deep/er/a.bin") is None
    hook.close()


def test_one_client_per_hook(cos_conns: Any) -> None:
    hook = CosHook()
    assert hook.client is hook.client is hook.get_conn()


def test_test_connection_true_and_false(cos_conns: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, message = CosHook().test_connection()
    assert ok, message

    monkeypatch.setenv("AIRFLOW_CONN_COS_BADKEY", conn_json(cos_conns.url, secret_key="wrong-key"))
    ok, message = CosHook("cos_badkey").test_connection()
    assert not ok and "SecretKey" in message

    monkeypatch.setenv("AIRFLOW_CONN_COS_NOBUCKET", conn_json(cos_conns.url, bucket="nosuchbucket"))
    ok, message = CosHook("cos_nobucket").test_connection()
    assert not ok and "nosuchbucket" in message and "not found" in message

    monkeypatch.setenv("AIRFLOW_CONN_COS_DOWN", conn_json("http://127.0.0.1:9", max_retries=0, connect_timeout=1))
    ok, message = CosHook("cos_down").test_connection()
    assert not ok and "Cannot reach http://127.0.0.1:9" in message


_B64 = re.compile(r"[A-Za-z0-9+/]{40,}={0,2}")


def _contains_signature(text: str) -> bool:
    for blob in _B64.findall(text):
        try:
            raw = base64.b64decode(blob + "=" * (-len(blob) % 4))
        except ValueError:
            continue
        if b"&k=" in raw and b"&e=" in raw:
            return True
    return False


def test_secret_key_and_signatures_never_logged(
    cos_conns: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src = make_file(tmp_path / "b.bin", 2 * MiB + 1)
    caplog.set_level(logging.DEBUG)
    hook = CosHook()
    hook.upload_file(str(src), "/logs/b.bin")
    hook.stat("/logs/b.bin")
    hook.delete("/logs/b.bin")
    hook.test_connection()
    text = "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records)
    assert caplog.records, "expected some log records at DEBUG"
    assert DEMO.secret_key not in text
    assert not _contains_signature(text)
    assert "Authorization" not in text


def test_test_button_answers_in_bounded_time_when_the_host_never_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """One attempt with short timeouts, whatever the connection's own timeouts, retries and deadline."""
    with SilentServer() as silent:
        monkeypatch.setenv(
            "AIRFLOW_CONN_COS_SILENT",
            conn_json(silent.url, connect_timeout=10, read_timeout=120, max_retries=5, retry_deadline=600),
        )
        started = time.monotonic()
        ok, message = CosHook("cos_silent").test_connection()
        elapsed = time.monotonic() - started
        accepted = silent.accepted
    assert ok is False and elapsed < 20, (elapsed, message)
    assert accepted == 1  # the request really went out, once: no retries
    assert f"Cannot reach {silent.url}" in message and "no answer" in message


def test_upload_with_a_short_retry_deadline_fails_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_file(tmp_path / "a.bin", 1000)
    with SilentServer() as silent:
        monkeypatch.setenv(
            "AIRFLOW_CONN_COS_SILENT",
            conn_json(silent.url, connect_timeout=10, read_timeout=120, max_retries=5, retry_deadline=2),
        )
        started = time.monotonic()
        with pytest.raises(CosTransportError) as info:
            CosHook("cos_silent").upload_file(str(src), "/dir/a.bin")
        elapsed = time.monotonic() - started
        assert silent.accepted >= 1
    assert 1.5 < elapsed < 10, elapsed
    assert "retry deadline of 2 s" in str(info.value)


def test_test_messages_name_the_endpoint_and_bucket_not_airflows_temporary_id(
    cos_conns: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Airflow's Test button tests a copy stored under a random id (``iBg2s4j5``) the user never made."""
    temporary_id = "iBg2s4j5"
    cases = {
        "right key": (conn_json(cos_conns.url), "Connected to"),
        "wrong key": (conn_json(cos_conns.url, secret_key="wrong-key"), "Authentication failed"),
        "no bucket": (conn_json(cos_conns.url, bucket="nosuchbucket"), "not found"),
        "bad app_id": (conn_json(cos_conns.url, app_id="12ab"), "extra field 'app_id'"),
    }
    conflicting = json.loads(conn_json(cos_conns.url))
    conflicting["port"] = 1
    cases["port conflict"] = (json.dumps(conflicting), "names port")
    for name, (conn, expected) in cases.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{temporary_id.upper()}", conn)
        ok, message = CosHook(temporary_id).test_connection()
        assert ok is (name == "right key") and expected in message, (name, message)
        assert temporary_id not in message and temporary_id.upper() not in message, (name, message)
        if name != "bad app_id" and name != "port conflict":
            assert cos_conns.url in message, (name, message)
