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
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__")
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
        ):
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


# --- dead code: every definition below the lab has a user outside tests/ ----------------

# Kept although only tests call them, each for a reason.
TEST_ONLY_ON_PURPOSE = {
    "add_command_listener": "the transport's seam to watch what is written to QMP (read-only proofs)",
    "texts": "EventLog's lines as text: what the tests read of the widget",
    "MIGRATION_STATUSES": "model/migration.py is being reworked for QEMU 8-10 in parallel",
}
# Textual calls these by their name: handlers, bound actions, reactive watchers; and a screen's
# can_ACTION, which its check_action asks by name (screens/dashboard.py, _predicate).
FRAMEWORK_PREFIXES = ("on_", "action_", "watch_", "compute_", "validate_", "key_", "_on_", "_watch_", "can_")
# Users: the package itself (lab included), the benchmarks, the scripts and the fixture recorders.
USERS = ("migtui/**/*.py", "migtui/**/*.tcss", "bench/*.py", "scripts/*", "tests/fixtures/*.py")


def _definitions() -> list[tuple[str, int, str]]:
    """(file, line, name) of every class, function, method and module-level name in
    migtui/ except the lab (which exists for tests and demos) and ``__main__``."""
    import importlib

    found: list[tuple[str, int, str]] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent)
        if relative.parts[1] == "lab" or path.name == "__main__.py":
            continue
        module = importlib.import_module(".".join(relative.with_suffix("").parts).removesuffix(".__init__"))

        def visit(body: list[ast.stmt], cls: str | None, module: object = module, relative: Path = relative) -> None:
            for node in body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    if cls is not None:
                        if node.name.startswith(FRAMEWORK_PREFIXES) or any(
                            not (isinstance(d, ast.Name) and d.id in ("property", "staticmethod", "classmethod"))
                            for d in node.decorator_list
                        ):
                            continue  # called by name by the framework, or registered by a decorator
                        klass = getattr(module, cls, None)
                        if klass is not None and any(node.name in vars(base) for base in klass.__mro__[1:]):
                            continue  # overrides a base class's method: the base calls it
                    if not node.name.startswith("__"):
                        found.append((str(relative), node.lineno, node.name))
                elif isinstance(node, ast.ClassDef):
                    found.append((str(relative), node.lineno, node.name))
                    visit(node.body, node.name)
                elif cls is None and isinstance(node, (ast.Assign, ast.AnnAssign)):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    found.extend((str(relative), node.lineno, t.id) for t in targets
                                 if isinstance(t, ast.Name) and not t.id.startswith("__"))

        visit(ast.parse(path.read_text(encoding="utf-8")).body, None)
    return found


def test_no_definition_is_used_only_by_tests() -> None:
    import re
    from collections import Counter

    root = PACKAGE.parent
    text = "\n".join(p.read_text(encoding="utf-8", errors="replace")
                     for pattern in USERS for p in sorted(root.glob(pattern)) if p.is_file())
    definitions = _definitions()
    assert len(definitions) > 100, "the walk found too few definitions"
    defined = Counter(name for _, _, name in definitions)
    words = Counter(re.findall(r"\w+", text))  # every whole-word use, counted once (a regex per name took minutes)
    dead = [f"{file}:{line} {name}" for file, line, name in definitions
            if name not in TEST_ONLY_ON_PURPOSE and words[name] <= defined[name]]
    assert not dead, "defined but used by nothing outside tests/ (remove, or say why in TEST_ONLY_ON_PURPOSE):\n" \
        + "\n".join(dead)


def test_every_message_has_a_handler() -> None:
    """A message nobody handles is dead code that still costs a post per event."""
    import re

    from textual.message import Message

    from migtui.tui import messages

    source = "\n".join(p.read_text(encoding="utf-8") for p in sorted((PACKAGE / "tui").rglob("*.py")))
    defined = [cls for cls in vars(messages).values()
               if isinstance(cls, type) and issubclass(cls, Message) and cls.__module__ == messages.__name__]
    assert defined, "no message found in migtui/tui/messages.py"
    unhandled = [cls.__name__ for cls in defined
                 if f"def {cls.handler_name}(" not in source and not re.search(rf"@on\({cls.__name__}\b", source)]
    assert not unhandled, f"posted but never handled: {unhandled}"
