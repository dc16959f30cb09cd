"""A local emulator of Tencent COS: the legacy JSON API (``/files/v1``, ``/files/v2``) and the XML API,
on one port and one storage.

For development, the demo and the tests. It uses the protocol layer (one signer/verifier, one multipart
decoder, one error table) and never imports the transfer engine or Airflow. See docs/emulator.md.

    from airflow_provider_cos.emulator import CosEmulator, FaultRule, DEMO
    with CosEmulator(data_dir=tmp_path, port=0) as emu:
        emu.url
"""

from __future__ import annotations

from airflow_provider_cos.emulator.config import DEMO, BucketConfig, EmulatorSettings
from airflow_provider_cos.emulator.faults import EmulatorStats, FaultRule
from airflow_provider_cos.emulator.server import CosEmulator, EmulatorPortInUseError

__all__ = [
    "DEMO",
    "BucketConfig",
    "CosEmulator",
    "EmulatorPortInUseError",
    "EmulatorSettings",
    "EmulatorStats",
    "FaultRule",
]
