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

from airflow_provider_cos.emulator.config import (
    DEMO,
    check_bound_buckets,
    validate_custom_domain,
    validate_region,
    validate_session_ttl,
)
from airflow_provider_cos.emulator.server import CosEmulator, EmulatorPortInUseError
from airflow_provider_cos.emulator.storage import DEFAULT_SESSION_TTL
from airflow_provider_cos.protocol.errors import CosConfigError


def _region(text: str) -> str:
    try:
        return validate_region(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _ttl(text: str) -> float:
    try:
        return validate_session_ttl(float(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _custom_domain(text: str) -> tuple[str, str]:
    domain, sep, bucket = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(
            f"expected DOMAIN=BUCKET-APPID such as files.example.com=examplebucket-1250000000, not {text!r}"
        )
    try:
        return validate_custom_domain(domain, bucket)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_cos.emulator",
        description="Local emulator of COS: the JSON API (/files/v1, /files/v2) "
        "and the XML API on one port. Without flags: port 8089, the demo "
        "credentials below and a "
        "temporary data directory.",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8089,
        help="port on 127.0.0.1; 0 picks a free one; a busy port is an error (default: %(default)s)",
    )
    parser.add_argument("--data-dir", default=None, help="state directory (default: a temporary one)")
    parser.add_argument("--appid", default=DEMO.appid, help="(default: the demo value %(default)s)")
    parser.add_argument("--bucket", default=DEMO.bucket, help="(default: the demo value %(default)s)")
    parser.add_argument("--secret-id", default=DEMO.secret_id, help="(default: the demo value %(default)s)")
    parser.add_argument("--secret-key", default=DEMO.secret_key, help="(default: the demo value %(default)s)")
    parser.add_argument("--serial-upload", action="store_true", help="answer serial_upload=1")
    parser.add_argument("--slice-size", type=int, default=None, help="force the slice size the server answers")
    parser.add_argument(
        "--session-ttl",
        type=_ttl,
        default=DEFAULT_SESSION_TTL,
        metavar="SECONDS",
        help="discard an unfinished upload idle this long, with its data (default: %(default)s)",
    )
    parser.add_argument(
        "--region",
        type=_region,
        default="ap-guangzhou",
        help="region of the XML API host names <bucket>-<appid>.cos.<region>.myqcloud.com (default: %(default)s)",
    )
    parser.add_argument(
        "--custom-domain",
        type=_custom_domain,
        action="append",
        default=[],
        metavar="DOMAIN=BUCKET-APPID",
        help="serve the XML API for requests with 'Host: DOMAIN' from that bucket, as a custom domain bound "
        "to it in COS (e.g. files.example.com=examplebucket-1250000000); repeatable",
    )
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    custom_domains = dict(args.custom_domain)
    try:
        check_bound_buckets(custom_domains, [f"{args.bucket}-{args.appid}"])
    except ValueError as exc:
        parser.error(f"argument --custom-domain: {exc}")
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    try:
        emulator = CosEmulator(
            data_dir=args.data_dir,
            appid=args.appid,
            bucket=args.bucket,
            secret_id=args.secret_id,
            secret_key=args.secret_key,
            port=args.port,
            custom_domains=custom_domains,
        )
    except CosConfigError as exc:
        parser.error(exc.message)
    emulator.settings.serial_upload = args.serial_upload
    emulator.settings.slice_size = args.slice_size
    emulator.settings.session_ttl = args.session_ttl
    emulator.settings.xml_region = args.region
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        try:
            emulator.start()
        except EmulatorPortInUseError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        sys.stdout.write(emulator.url + "\n")
        sys.stdout.flush()
        print(emulator.xml_help(), file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        emulator.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
