"""The vectors file used by the tests is a copy of ../shared/spec/vectors.json; keep them identical."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[2] / "shared" / "spec" / "vectors.json"


@pytest.mark.skipif(not SHARED.exists(), reason="shared/ spec not beside the checkout")
def test_vectors_copy_is_current() -> None:
    assert (HERE / "vectors.json").read_bytes() == SHARED.read_bytes()
