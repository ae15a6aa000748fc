"""The layers: interleave | rankers -> analysis -> simulations | serving.

A package imports only packages below it; nothing imports serving. Checked on the source
(every import statement, including lazy ones inside functions).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("interleave", "rankers", "analysis", "simulations", "serving")
ALLOWED = {
    "interleave": set(),
    "rankers": set(),
    "analysis": {"interleave", "rankers"},
    "simulations": {"interleave", "rankers", "analysis"},
    "serving": {"interleave", "rankers", "analysis"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_only_layers_below(package: str) -> None:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for other in imported_packages(path) - {package} - ALLOWED[package]:
            bad.append(f"{path.relative_to(ROOT)} imports {other}")
    assert not bad, "layering broken:\n" + "\n".join(bad)


def test_checker_sees_lazy_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    import serving.app\n    from analysis import schema\n")
    assert imported_packages(module) == {"serving", "analysis"}
