"""Production code never imports the simulators package."""

from __future__ import annotations

import ast
from pathlib import Path

import superior_one

PACKAGE_DIR = Path(superior_one.__file__).resolve().parent


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            modules.add(node.module)
    return modules


def test_production_modules_do_not_import_simulators() -> None:
    offenders = [
        str(path.relative_to(PACKAGE_DIR))
        for path in PACKAGE_DIR.rglob("*.py")
        if "simulators" not in path.relative_to(PACKAGE_DIR).parts
        and any(m.startswith("superior_one.simulators") for m in _imported_modules(path))
    ]

    assert offenders == []
