"""protocol/ and transfer/ never import Airflow (STYLE.md layering); the emulator never imports transfer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "airflow_provider_cos"


def _imports(directory: Path) -> list[tuple[str, str]]:
    found = []
    for file in sorted(directory.rglob("*.py")):
        tree = ast.parse(file.read_text(), str(file))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(file.name, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.append((file.name, node.module))
    return found


@pytest.mark.parametrize("layer", ["protocol", "transfer", "emulator"])
def test_no_airflow_below_the_glue(layer: str) -> None:
    directory = PKG / layer
    if not directory.exists():
        pytest.skip(f"{layer} not present")
    bad = [(f, m) for f, m in _imports(directory) if m == "airflow" or m.startswith("airflow.")]
    assert bad == []


def test_protocol_is_pure() -> None:
    bad = [
        (f, m)
        for f, m in _imports(PKG / "protocol")
        if m.split(".")[0] in {"requests", "socket", "urllib3", "http", "airflow_provider_cos.transfer"}
        or (m.startswith("airflow_provider_cos.") and not m.startswith("airflow_provider_cos.protocol"))
    ]
    assert bad == []


def test_emulator_never_uses_the_engine() -> None:
    directory = PKG / "emulator"
    if not directory.exists():
        pytest.skip("emulator not present")
    assert [(f, m) for f, m in _imports(directory) if m.startswith("airflow_provider_cos.transfer")] == []


def test_engine_never_asks_which_dialect() -> None:
    """The engine dispatches on ``dialect.slice_ops`` (data), never on the dialect's class."""
    bad = []
    for file in sorted((PKG / "transfer").rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance":
                classes = ast.unparse(node.args[1]) if len(node.args) > 1 else ""
                if "Dialect" in classes:
                    bad.append((file.name, node.lineno, classes))
            if isinstance(node, ast.ImportFrom) and node.module == "airflow_provider_cos.protocol.operations":
                bad += [(file.name, node.lineno, a.name) for a in node.names if a.name in ("V1Dialect", "V2Dialect")]
    assert bad == []
