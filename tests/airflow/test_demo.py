"""The main-job command end to end, as a fresh process with no Airflow environment."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def test_demo_command_runs_the_example_dag() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "COS_"))}
    done = subprocess.run(
        [sys.executable, "-m", "airflow_provider_cos.demo", "--artifact-mib", "3"],
        env=env,
        text=True,
        capture_output=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    match = re.search(r"^resource_path: (/\S+)$", done.stdout, re.M)
    assert match, done.stdout[-2000:]
    assert match.group(1).startswith("/1250000000/examplebucket/airflow-example/")
    assert match.group(1).endswith("/artifact-3mib.bin")
    home = re.search(r"^AIRFLOW_HOME=(\S+) \(temporary\)$", done.stdout, re.M)
    assert home and not os.path.exists(home.group(1))  # the temporary home is removed


def test_demo_command_api_xml() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "COS_"))}
    done = subprocess.run(
        [sys.executable, "-m", "airflow_provider_cos.demo", "--api", "xml", "--artifact-mib", "3"],
        env=env,
        text=True,
        capture_output=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    match = re.search(r"^resource_path: (/\S+)$", done.stdout, re.M)
    assert match and match.group(1).startswith("/1250000000/examplebucket/airflow-example-xml/"), done.stdout[-2000:]
    assert re.search(r"^uploaded 3145728 bytes, crc64 \d+, in ", done.stdout, re.M)
