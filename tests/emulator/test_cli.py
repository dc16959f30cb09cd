"""``python -m airflow_provider_cos.emulator`` as a real subprocess."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import requests

from airflow_provider_cos.emulator import DEMO, BucketConfig
from tests.emulator.client import Client


def _start(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "airflow_provider_cos.emulator", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, line


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover
        proc.kill()
        proc.wait(timeout=5)


def test_cli_with_flags(tmp_path: Path) -> None:
    creds = BucketConfig("1250000099", "clibucket", "AKIDcliTestIdNotReal0000000000000000", "cli-test-key")
    proc, line = _start(["--port", "0", "--data-dir", str(tmp_path), "--appid", creds.appid, "--bucket",
                         creds.bucket, "--secret-id", creds.secret_id, "--secret-key", creds.secret_key])
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+\n", line), line
        url = line.strip()
        client = Client(url, "v1", bucket=creds)
        client.upload("/cli.txt", b"from the cli")
        assert client.stat("/cli.txt").filesize == 12
        assert requests.get(url + "/_emulator/stats", timeout=10).json()["data"]["requests"]["upload"] == 1
    finally:
        _stop(proc)
    assert proc.returncode == 0
    assert list((tmp_path / "buckets" / f"{creds.appid}-{creds.bucket}" / "objects").glob("*.json"))
    assert proc.stdout is not None and proc.stdout.read() == ""  # exactly one line on stdout


def test_cli_defaults_use_demo_credentials() -> None:
    proc, line = _start(["--port", "0"])
    try:
        client = Client(line.strip(), "v2", bucket=DEMO)
        client.upload("/demo.txt", b"demo")
        assert client.stat("/demo.txt").sha
    finally:
        _stop(proc)


def test_emulator_imports_neither_transfer_nor_airflow() -> None:
    code = ("import sys, airflow_provider_cos.emulator, airflow_provider_cos.emulator.__main__\n"
            "bad = [m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')"
            " or m.startswith('airflow_provider_cos.transfer')]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
