"""Shared pytest fixtures giving a running COS emulator (real socket, port 0, temporary data dir).

Use from any test package with ``pytest_plugins = ["tests.fixtures_emulator"]`` (root conftest) or by
importing the fixtures. ``emulator``: one started :class:`CosEmulator` with the DEMO credentials.
``emulator_factory(**kwargs)``: start more (each stopped at teardown); ``data_dir`` defaults to a fresh
temporary directory. Teardown fails if an emulator answered an HTTP 500 caused by a bug of its own
(``stats.internal_errors``; injected faults do not count).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cos.emulator import DEMO, CosEmulator


@pytest.fixture
def emulator_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., CosEmulator]]:
    started: list[CosEmulator] = []

    def make(**kwargs: Any) -> CosEmulator:
        kwargs.setdefault("data_dir", tmp_path_factory.mktemp("cos-emulator"))
        kwargs.setdefault("port", 0)
        for key in ("appid", "bucket", "secret_id", "secret_key"):
            kwargs.setdefault(key, getattr(DEMO, key))
        emu = CosEmulator(**kwargs)
        emu.start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.close()
    bugs = [emu.url for emu in started if emu.stats.internal_errors]
    assert not bugs, f"the emulator answered HTTP 500 because of a bug (see the log): {bugs}"


@pytest.fixture
def emulator(emulator_factory: Callable[..., CosEmulator]) -> CosEmulator:
    return emulator_factory()


@pytest.fixture
def emulator_data_dir(emulator: CosEmulator) -> Path:
    return emulator.data_dir
