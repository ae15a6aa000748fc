"""`rankers` sits at the bottom of Braid's layers: it imports no other Braid package."""

from __future__ import annotations

import ast
from pathlib import Path

import rankers

ABOVE = {"analysis", "interleave", "serving", "simulations"}


def test_rankers_imports_no_other_braid_package() -> None:
    offenders = []
    for path in sorted(Path(rankers.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offenders += [f"{path.name}: {name}" for name in names if name.split(".")[0] in ABOVE]
    assert offenders == []


def test_public_names_are_sorted_and_exported() -> None:
    assert list(rankers.__all__) == sorted(rankers.__all__)
    for name in rankers.__all__:
        assert hasattr(rankers, name)
