"""The vectors files used by the tests are copies of ../shared/spec/*.json; keep them identical."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SPEC = HERE.parents[2] / "shared" / "spec"


@pytest.mark.parametrize("name", ["vectors.json", "xml_vectors.json"])
def test_vectors_copy_is_current(name: str) -> None:
    if not (SPEC / name).exists():
        pytest.skip("shared/ spec not beside the checkout")
    assert (HERE / name).read_bytes() == (SPEC / name).read_bytes()
