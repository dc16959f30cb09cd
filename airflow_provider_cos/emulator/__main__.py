"""``python -m airflow_provider_cos.emulator``: run the emulator until SIGINT/SIGTERM.

Prints exactly one line, the base URL ``http://127.0.0.1:<port>``, to stdout when ready. Without flags it
serves the documented demo credentials (:data:`DEMO`) from a temporary data directory.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from airflow_provider_cos.emulator.config import DEMO
from airflow_provider_cos.emulator.server import CosEmulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_cos.emulator",
                                     description="Local emulator of the COS JSON API (/files/v1, /files/v2).")
    parser.add_argument("--port", type=int, default=8089, help="TCP port on 127.0.0.1 (0 = pick a free one)")
    parser.add_argument("--data-dir", default=None, help="state directory (default: a temporary one)")
    parser.add_argument("--appid", default=DEMO.appid)
    parser.add_argument("--bucket", default=DEMO.bucket)
    parser.add_argument("--secret-id", default=DEMO.secret_id)
    parser.add_argument("--secret-key", default=DEMO.secret_key)
    parser.add_argument("--serial-upload", action="store_true", help="answer serial_upload=1")
    parser.add_argument("--slice-size", type=int, default=None, help="force the slice size the server answers")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    emulator = CosEmulator(data_dir=args.data_dir, appid=args.appid, bucket=args.bucket,
                           secret_id=args.secret_id, secret_key=args.secret_key, port=args.port)
    emulator.settings.serial_upload = args.serial_upload
    emulator.settings.slice_size = args.slice_size
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        emulator.start()
        sys.stdout.write(emulator.url + "\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        emulator.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
