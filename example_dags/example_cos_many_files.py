"""Many files to Tencent COS: one task for a whole directory, or one mapped task per file.

``make_files`` writes ``file_count`` small files (param, default 20) into a temporary directory with a
sub-folder. ``upload_dir`` uploads the whole directory with one :class:`CosSliceUploadOperator` (its
``cos_path`` is the folder prefix): files and their slices share one bounded pool, files already stored
with the same content are skipped (a retry sends only what failed), and the task returns the list of
``resource_path``s. ``upload_each`` is the alternative for users who prefer one task instance per file:
dynamic task mapping (``.partial(...).expand_kwargs(...)``) over the same files. ``count_objects`` checks
both results, and ``cleanup`` (a teardown) removes the local files.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile

import pendulum
from airflow.sdk import Param, dag, task

from airflow_provider_cos.operators.cos import CosSliceUploadOperator

CONN_ID = os.environ.get("COS_EXAMPLE_CONN_ID", "cos_default")
RUN_DATE = "{{ (dag_run.logical_date or dag_run.run_after) | ds }}"


@dag(
    dag_id="example_cos_many_files",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"file_count": Param(20, type="integer", minimum=1, maximum=10000)},
    default_args={"retries": 1, "retry_delay": pendulum.duration(seconds=5)},
    tags=["example", "cos"],
)
def example_cos_many_files() -> None:
    @task
    def make_files(params: dict | None = None) -> str:
        count = int((params or {})["file_count"])
        directory = tempfile.mkdtemp(prefix="cos-many-")
        os.makedirs(os.path.join(directory, "sub"))
        rng = random.Random(f"cos-many-{count}")
        for i in range(count):
            folder = directory if i % 2 else os.path.join(directory, "sub")
            with open(os.path.join(folder, f"part-{i:05d}.bin"), "wb") as fh:
                fh.write(rng.randbytes(4096 + i))
        return directory

    directory = make_files()

    # One task, many files: a directory (or a glob like ".../*.bin", or a list) and a folder cos_path.
    upload_dir = CosSliceUploadOperator(
        task_id="upload_dir",
        cos_conn_id=CONN_ID,
        local_path=directory,
        cos_path=f"/airflow-example-many/{RUN_DATE}/",
    )

    @task
    def per_file_kwargs(directory: str) -> list[dict]:
        kwargs = []
        for root, _dirs, files in os.walk(directory):
            for name in sorted(files):
                rel = os.path.relpath(os.path.join(root, name), directory)
                kwargs.append({"local_path": os.path.join(root, name), "cos_path": f"/airflow-example-each/{rel}"})
        return kwargs

    # One mapped task instance per file (each retried on its own).
    upload_each = CosSliceUploadOperator.partial(task_id="upload_each", cos_conn_id=CONN_ID).expand_kwargs(
        per_file_kwargs(directory)
    )

    @task
    def count_objects(resource_paths: list[str], each: list[str], params: dict | None = None) -> int:
        count = int((params or {})["file_count"])
        if len(resource_paths) != count or len(list(each)) != count:
            raise RuntimeError(f"expected {count} objects, got {len(resource_paths)} and {len(list(each))}")
        print(f"{count} objects, e.g. {resource_paths[0]}")
        return count

    @task
    def cleanup(directory: str) -> None:
        shutil.rmtree(directory, ignore_errors=True)

    counted = count_objects(upload_dir.output, upload_each.output)
    counted >> cleanup(directory).as_teardown(setups=directory)


example_cos_many_files()
