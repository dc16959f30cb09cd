"""ObjectStoragePath("cos://<bucket>-<appid>/...") inside tasks, through the registered ``cos`` filesystem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG, task

from airflow_provider_cos.emulator import DEMO
from tests.airflow.conftest import run_dag, task_states

START = pendulum.datetime(2024, 1, 1, tz="UTC")
pytestmark = pytest.mark.usefixtures("airflow_db")
ROOT = f"cos://{DEMO.bucket}-{DEMO.appid}"


def test_provider_registers_the_cos_scheme() -> None:
    from airflow.sdk.io.fs import has_fs

    assert has_fs("cos")


def test_cos_scheme_is_known_to_fsspec_without_importing_the_provider() -> None:
    """A DAG that only builds ObjectStoragePath("cos://...") never imports this package: the scheme comes
    from the ``fsspec.specs`` entry point of the installed distribution."""
    code = "import sys, fsspec\ncls = fsspec.get_filesystem_class('cos')\nprint(cls.__module__, cls.__name__)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["airflow_provider_cos.fs.cos", "CosFileSystem"]


@pytest.mark.parametrize("conn_id", ["cos_default", "cos_v2"])
def test_object_storage_path_in_tasks(cos_conns: Any, tmp_path: Path, conn_id: str) -> None:
    local_src = tmp_path / "local.bin"
    local_src.write_bytes(b"x" * 300_000)
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    with DAG(f"cos_test_osp_{conn_id}", schedule=None, start_date=START, catchup=False) as dag:

        @task
        def write() -> Any:
            from airflow.sdk import ObjectStoragePath

            base = ObjectStoragePath(f"{ROOT}/osp/{conn_id}/", conn_id=conn_id)
            base.mkdir(parents=True, exist_ok=True)
            (base / "a.txt").write_text("hello cos")
            (base / "b.txt").write_bytes(b"second")
            ObjectStoragePath(f"file://{local_src}").copy(base / "copied.bin")  # local -> COS
            return base / "a.txt"  # through XCom

        @task
        def read(path: Any) -> list[str]:
            from airflow.sdk import ObjectStoragePath

            assert path.read_text() == "hello cos"
            base = path.parent
            assert base.is_dir() and path.exists() and path.is_file()
            names = sorted(p.name for p in base.iterdir())
            assert names == ["a.txt", "b.txt", "copied.bin"], names
            assert sorted(p.name for p in base.glob("*.txt")) == ["a.txt", "b.txt"]
            assert (base / "copied.bin").stat()["size"] == 300_000
            with (base / "copied.bin").open("rb") as fh:  # ranged reads
                fh.seek(100_000)
                assert fh.read(5) == b"xxxxx"
            (base / "copied.bin").copy(ObjectStoragePath(f"file://{out_dir}/back.bin"))  # COS -> local
            (base / "b.txt").unlink()
            assert not (base / "b.txt").exists()
            return names

        read(write())
    run = run_dag(dag)
    assert task_states(run) == {"write": "success", "read": "success"}
    assert (out_dir / "back.bin").read_bytes() == local_src.read_bytes()


def test_write_failure_stores_nothing_and_a_foreign_appid_is_refused(cos_conns: Any) -> None:
    from airflow_provider_cos.fs.cos import get_fs

    fs = get_fs("cos_v2")
    with pytest.raises(RuntimeError), fs.open(f"{ROOT}/never.txt", "wb") as fh:
        fh.write(b"partial")
        raise RuntimeError("the task failed while writing")
    assert not fs.exists(f"{ROOT}/never.txt")
    from airflow_provider_cos.protocol.errors import CosConfigError

    with pytest.raises(CosConfigError, match="appid"):
        fs.info("cos://examplebucket-1111111111/x.txt")
    with fs.open(f"{ROOT}/big.bin", "wb") as fh:
        fh.write(bytes(range(256)) * 40_000)  # ~10 MiB
    with fs.open(f"{ROOT}/big.bin", "rb", block_size=1024 * 1024) as fh:
        fh.seek(5_000_000)
        assert fh.read(4) == bytes([(5_000_000 + i) % 256 for i in range(4)])
    assert cos_conns.stats.requests.get("download", 0) >= 1
