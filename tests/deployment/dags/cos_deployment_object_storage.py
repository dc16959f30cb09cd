"""ObjectStoragePath on a real deployment: one task writes cos:// objects and returns a path through XCom,
the next reads it back, lists the folder and copies an object to a local file."""

from __future__ import annotations

import pendulum
from airflow.sdk import ObjectStoragePath, dag, task

ROOT = "cos://examplebucket-1250000000/deployment-osp"


@dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False)
def cos_deployment_object_storage() -> None:
    @task
    def write(dag_run=None) -> ObjectStoragePath:
        base = ObjectStoragePath(f"{ROOT}/{dag_run.run_id.replace(':', '-').replace('+', '-')}/", conn_id="cos_xml")
        base.mkdir(parents=True, exist_ok=True)
        (base / "a.txt").write_text("hello from a deployment")
        (base / "b.bin").write_bytes(bytes(range(256)) * 4096)
        return base / "a.txt"

    @task
    def read(path: ObjectStoragePath) -> dict:
        import os
        import tempfile

        text = path.read_text()
        names = sorted(p.name for p in path.parent.iterdir())
        local = ObjectStoragePath(f"file://{tempfile.mkdtemp()}/b.bin")
        (path.parent / "b.bin").copy(local)
        size = os.path.getsize(local.path)
        (path.parent / "b.bin").unlink()
        return {"text": text, "names": names, "copied": size, "left": sorted(p.name for p in path.parent.iterdir())}

    read(write())


cos_deployment_object_storage()
