"""Layering: nothing outside migtui/tui imports textual (walks the AST of every module)."""

from __future__ import annotations

import ast
from pathlib import Path

import migtui

PACKAGE = Path(migtui.__file__).resolve().parent
FORBIDDEN = "textual"


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "import_module", "__import__"
        ):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def test_only_the_tui_imports_textual() -> None:
    offenders = []
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 10, "the package walk found too few modules"
    for path in modules:
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "tui":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for lineno, name in _imports(tree):
            if name == FORBIDDEN or name.startswith(FORBIDDEN + "."):
                offenders.append(f"migtui/{relative}:{lineno} imports {name}")
    assert not offenders, "textual imported outside migtui/tui:\n" + "\n".join(offenders)


def test_the_walk_would_catch_an_offender() -> None:
    tree = ast.parse("import os\nfrom textual.widgets import Static\nimport textual\n")
    names = [name for _, name in _imports(tree)]
    assert "textual.widgets" in names and "textual" in names


def test_the_tui_really_uses_textual() -> None:
    # Guards the walk itself: if tui/ stopped being skipped it would flag these.
    tree = ast.parse((PACKAGE / "tui" / "app.py").read_text(encoding="utf-8"))
    assert any(name.startswith(FORBIDDEN) for _, name in _imports(tree))
