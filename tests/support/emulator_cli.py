"""The emulator's command line, as the tests that start it as a process use it."""

from __future__ import annotations

import sys
from pathlib import Path


def emulator_command(data_dir: Path, *flags: str) -> list[str]:
    """``python -m airflow_provider_cos.emulator --port 0 --data-dir DATA_DIR FLAGS...``: a free port, printed
    as the URL on the first line of stdout."""
    return [sys.executable, "-m", "airflow_provider_cos.emulator", "--port", "0", "--data-dir", str(data_dir), *flags]
