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
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_cos.emulator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
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
    proc, line = _start(
        [
            "--port",
            "0",
            "--data-dir",
            str(tmp_path),
            "--appid",
            creds.appid,
            "--bucket",
            creds.bucket,
            "--secret-id",
            creds.secret_id,
            "--secret-key",
            creds.secret_key,
        ]
    )
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
    code = (
        "import sys, airflow_provider_cos.emulator, airflow_provider_cos.emulator.__main__\n"
        "bad = [m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')"
        " or m.startswith('airflow_provider_cos.transfer')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_busy_explicit_port_is_an_error_not_another_port(tmp_path: Path) -> None:
    import socket

    from airflow_provider_cos.emulator import CosEmulator, EmulatorPortInUseError

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "-m", "airflow_provider_cos.emulator", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 2
        assert out.stdout == ""  # no URL line: nothing is listening for the caller
        assert f"cannot listen on 127.0.0.1:{port}" in out.stderr
        emu = CosEmulator(data_dir=tmp_path, port=port)
        try:
            emu.start()
        except EmulatorPortInUseError as exc:
            assert str(port) in str(exc)
        else:  # pragma: no cover - would be the bug
            emu.close()
            raise AssertionError("started on another port")


def test_bad_flags_get_one_line_errors() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "airflow_provider_cos.emulator", "--port", "0", "--appid", "abc"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "app_id must be a decimal number, got 'abc'" in out.stderr
    assert "Traceback" not in out.stderr


def test_startup_says_how_to_address_the_xml_api(tmp_path: Path) -> None:
    from tests.emulator.xmlclient import XmlClient

    proc, line = _start(["--port", "0", "--data-dir", str(tmp_path), "--region", "ap-beijing"])
    try:
        url = line.strip()
        assert proc.stderr is not None
        help_line = proc.stderr.readline()
        host = f"{DEMO.bucket}-{DEMO.appid}.cos.ap-beijing.myqcloud.com"
        assert f"XML API at {url}: send 'Host: {host}'" in help_line, help_line
        assert f"{url}/{DEMO.bucket}-{DEMO.appid}/<key>" in help_line
        xml = XmlClient(url)
        xml.call("put_object", "cli.txt", 3, data=b"xml")
        assert Client(url, "v1").stat("/cli.txt").filesize == 3
    finally:
        _stop(proc)
    out = subprocess.run(
        [sys.executable, "-m", "airflow_provider_cos.emulator", "--region", "not a region"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "region must look like ap-guangzhou" in out.stderr
