"""Emulator tests: fixtures come from the shared module (the root conftest may also load it)."""

from __future__ import annotations

from tests.fixtures_emulator import emulator, emulator_data_dir, emulator_factory

__all__ = ["emulator", "emulator_data_dir", "emulator_factory"]
