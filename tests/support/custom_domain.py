"""Shared set-up of the custom-domain tests: ``files.example.com`` bound on the emulator to a bucket that
is not its default one (so a request routed by anything but the domain lands elsewhere), reached through
:class:`FaultProxy` without faults - a plain forwarder that records each request head as it crossed the
wire, so a test sees the ``Host`` the emulator received."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_cos.emulator import DEMO, BucketConfig, CosEmulator
from tests.support.faultproxy import FaultProxy, RequestRecord

DOMAIN = "files.example.com"
#: Same appid and key pair as the default bucket, so one connection can name either bucket.
OTHER = BucketConfig(DEMO.appid, "otherbucket", DEMO.secret_id, DEMO.secret_key)
OTHER_NAME = f"{OTHER.bucket}-{OTHER.appid}"
_HOST = re.compile(rb"\r\nhost:[ \t]*([^\r\n]*)\r\n", re.IGNORECASE)


def host_of(record: RequestRecord) -> str:
    """The ``Host`` header of a forwarded request."""
    head = record.sample.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    match = _HOST.search(head)
    assert match, head[:200]
    return match.group(1).decode()


@pytest.fixture
def bound(emulator_factory: Any) -> CosEmulator:
    emulator: CosEmulator = emulator_factory(extra_buckets=[OTHER], custom_domains={DOMAIN: OTHER_NAME})
    return emulator


@pytest.fixture
def proxy(bound: CosEmulator) -> Iterator[FaultProxy]:
    with FaultProxy(bound.url) as spy:
        yield spy
