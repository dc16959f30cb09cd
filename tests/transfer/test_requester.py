"""Requester: an error raised through ``Requester.call`` names its operation and path."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from airflow_provider_cos.emulator import CosEmulator, FaultRule
from airflow_provider_cos.protocol.errors import CosAuthError, CosServerError
from airflow_provider_cos.transfer import CosClient, RetryPolicy
from tests.transfer.conftest import small_config

Make = Callable[..., CosClient]


def test_auth_error_names_operation_and_path(make_client: Make, api_version: str) -> None:
    client = make_client(api_version, secret_key="not-the-key")
    with pytest.raises(CosAuthError) as info:
        client.stat("/some/where.bin")
    error = info.value
    assert (error.operation, error.path) == ("stat", "/some/where.bin")
    assert "op=stat" in str(error) and "path=/some/where.bin" in str(error)


def test_server_error_after_retries_names_operation_and_path(make_client: Make, emulator: CosEmulator) -> None:
    emulator.add_fault(FaultRule(op="stat", status=503, times=None))
    retry = RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_cap=0.01, deadline=10)
    client = make_client("v2", config=small_config(retry=retry))
    with pytest.raises(CosServerError) as info:
        client.stat("/a/b.bin")
    assert emulator.stats.faults_fired == 2
    text = str(info.value)
    assert "HTTP 503" in text and "op=stat" in text and "path=/a/b.bin" in text, text


@pytest.mark.parametrize("kind", ["refused", "dropped"])
def test_errors_raised_without_operation_and_path_get_them(make_client: Make, emulator: CosEmulator, kind: str) -> None:
    """The transport (connection refused or dropped, timeouts) raises without knowing the request; the
    requester fills in the fields, and ``str()`` must then say them too."""
    from airflow_provider_cos.protocol.errors import CosError

    once = RetryPolicy(max_attempts=1, backoff_base=0.01, backoff_cap=0.01, deadline=10)
    if kind == "refused":
        import socket

        with socket.socket() as sock:  # a port nobody listens on
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        client = make_client("v2", url=f"http://127.0.0.1:{port}", config=small_config(retry=once))
    else:
        client = make_client("v2", config=small_config(retry=once))
        emulator.add_fault(FaultRule(op="stat", drop=True, times=None))
    with pytest.raises(CosError) as info:
        client.stat("/a/b.bin")
    error = info.value
    assert (error.operation, error.path) == ("stat", "/a/b.bin")
    assert "op=stat" in str(error) and "path=/a/b.bin" in str(error), str(error)
