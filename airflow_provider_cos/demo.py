"""The end-to-end demo: ``python -m airflow_provider_cos.demo``.

1. uses a temporary ``AIRFLOW_HOME`` unless one is set (never ``~/airflow``);
2. starts the embedded COS emulator on 127.0.0.1 (free port, temporary data dir, DEMO credentials);
3. points the ``cos_default`` (v1), ``cos_v2`` and ``cos_xml`` connections at it through ``AIRFLOW_CONN_*``
   variables;
4. runs ``airflow db migrate`` and ``airflow dags test example_cos_slice_upload`` (``--api xml``:
   ``example_cos_xml_upload``, today's COS API) as subprocesses;
5. prints the uploaded object's ``resource_path`` and exits 0 on success.

Options: ``--api v1|xml``, ``--artifact-mib N`` (default 48), ``--dag-id`` (default: the API's example), ``--keep``
(keep the temporary directories).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_DAGS = Path(__file__).resolve().parent.parent / "example_dags"


def connection_json(
    url: str, *, appid: str, bucket: str, secret_id: str, secret_key: str, api_version: str = "v1", **extra: Any
) -> str:
    """The ``AIRFLOW_CONN_<ID>`` value of a ``cos`` connection to ``url``."""
    return json.dumps(
        {
            "conn_type": "cos",
            "login": secret_id,
            "password": secret_key,
            "host": url,
            "extra": {"app_id": appid, "bucket": bucket, "api_version": api_version, **extra},
        }
    )


def _airflow(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "airflow", *args]
    print(f"$ airflow {' '.join(args)}", flush=True)
    return subprocess.run(cmd, env=env, text=True, check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_cos.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--artifact-mib", type=int, default=int(os.environ.get("COS_EXAMPLE_ARTIFACT_MIB", "48")))
    parser.add_argument(
        "--api",
        choices=("v1", "xml"),
        default="v1",
        help="v1: example_cos_slice_upload (connection cos_default); xml: example_cos_xml_upload "
        "(connection cos_xml, today's COS API)",
    )
    parser.add_argument("--dag-id", default=None, help="default: the --api's example DAG")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    args = parser.parse_args(argv)
    args.dag_id = args.dag_id or ("example_cos_xml_upload" if args.api == "xml" else "example_cos_slice_upload")

    started = time.monotonic()
    from airflow_provider_cos.emulator import DEMO, CosEmulator

    scratch = Path(tempfile.mkdtemp(prefix="cos-demo-"))
    env = dict(os.environ)
    if not env.get("AIRFLOW_HOME"):
        env["AIRFLOW_HOME"] = str(scratch / "airflow_home")
        os.environ["AIRFLOW_HOME"] = env["AIRFLOW_HOME"]  # should anything in this process import airflow
        print(f"AIRFLOW_HOME={env['AIRFLOW_HOME']} (temporary)")
    dags_folder = Path(env.get("COS_DEMO_DAGS_FOLDER", REPO_DAGS))
    if not (dags_folder / "example_cos_slice_upload.py").exists():
        print(f"example DAGs not found in {dags_folder}; set COS_DEMO_DAGS_FOLDER", file=sys.stderr)
        return 2
    env.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(dags_folder))
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env["COS_EXAMPLE_ARTIFACT_MIB"] = str(args.artifact_mib)
    result_file = scratch / "result.json"
    env["COS_EXAMPLE_RESULT_FILE"] = str(result_file)

    try:
        with CosEmulator(
            data_dir=scratch / "emulator",
            appid=DEMO.appid,
            bucket=DEMO.bucket,
            secret_id=DEMO.secret_id,
            secret_key=DEMO.secret_key,
            port=0,
        ) as emulator:
            print(f"COS emulator at {emulator.url} (appid {DEMO.appid}, bucket {DEMO.bucket})", flush=True)
            creds = {
                "appid": DEMO.appid,
                "bucket": DEMO.bucket,
                "secret_id": DEMO.secret_id,
                "secret_key": DEMO.secret_key,
            }
            env["AIRFLOW_CONN_COS_DEFAULT"] = connection_json(emulator.url, **creds)
            env["AIRFLOW_CONN_COS_V2"] = connection_json(emulator.url, api_version="v2", **creds)
            env["AIRFLOW_CONN_COS_XML"] = connection_json(
                emulator.url, api_version="xml", region="ap-guangzhou", **creds
            )

            if _airflow(["db", "migrate"], env).returncode != 0:
                print("airflow db migrate failed", file=sys.stderr)
                return 1
            run = _airflow(["dags", "test", args.dag_id], env)
            stats = emulator.stats
        elapsed = time.monotonic() - started
        if run.returncode != 0 or not result_file.exists():
            print(
                f"\nDAG run of {args.dag_id} failed (exit code {run.returncode}) after {elapsed:.1f} s", file=sys.stderr
            )
            return 1
        result = json.loads(result_file.read_text())
        print(f"\nemulator stats: {stats}")
        checksum = f"crc64 {result['crc64']}" if "crc64" in result else f"sha1 {result['sha1']}"
        print(f"uploaded {result['size']} bytes, {checksum}, in {elapsed:.1f} s end to end")
        print(f"resource_path: {result['resource_path']}", flush=True)
        return 0
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
