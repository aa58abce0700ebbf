"""Dagster's private modules are reached through `candle_pipeline.dagster_internals` alone."""

import ast
from pathlib import Path

import candle_pipeline

PACKAGE = Path(candle_pipeline.__file__).parent
PRIVATE = "dagster._"


def private_imports(path: Path) -> list[str]:
    """The `dagster._*` modules `path` imports."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PRIVATE):
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names if alias.name.startswith(PRIVATE))
    return found


def test_no_module_but_dagster_internals_imports_private_dagster() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): private_imports(path)
        for path in PACKAGE.rglob("*.py")
        if path.name != "dagster_internals.py"
    }
    assert {name: modules for name, modules in offenders.items() if modules} == {}
