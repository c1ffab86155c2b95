"""Money code never calls float(): ruff's banned-api (pyproject.toml) covers Decimal.from_float and
float-returning helpers but cannot see the builtin name, so this walks the same modules for it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MONEY_CODE = [
    *sorted((ROOT / "accounts").rglob("*.py")),
    *sorted((ROOT / "marketdata").rglob("*.py")),
    ROOT / "realtime" / "protocol.py",
]
MODULES = [path for path in MONEY_CODE if "migrations" not in path.parts]


@pytest.mark.parametrize(
    "path", [p for p in MONEY_CODE if "migrations" not in p.parts], ids=lambda p: str(p.relative_to(ROOT))
)
def test_money_code_never_converts_to_float(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    calls = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "float"
    ]
    assert not calls, f"{path.name}: float() at lines {calls}"
