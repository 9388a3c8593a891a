"""The import rules: layers only import downwards, no import circle outside type-only
imports, nothing below ``migtui/commands/`` imports it, and the engine and its views
meet only in ``migtui/protocol/`` (walks the AST of every module; no import is run)."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import migtui

PACKAGE = Path(migtui.__file__).resolve().parent

# Bottom to top. A module may import its own layer and the layers before it.
LAYERS: list[tuple[str, ...]] = [
    ("migtui", "address", "errors", "listeners", "logfile", "format", "whole_file"),  # plain helpers
    ("model",),  # parsed QMP, pure
    ("transport",),  # one QMP connection
    ("libvirt",),  # libvirt domains as monitors (libvirt's own connections)
    ("workflow",),  # sessions and what is done with them
    ("lab",),  # real QEMU pairs (demos, tests)
    ("protocol",),  # what the engine and its views say to each other
    ("engine", "view"),  # the two ends: neither imports the other
    ("tui",),  # the dashboard, a view of the engine
    ("commands", "__main__"),  # argv to the layers below
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}
# Same rank, yet apart: the engine and a view share only the protocol.
APART = {("engine", "view"), ("view", "engine"), ("tui", "engine")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "migtui"


def _type_only(tree: ast.AST) -> set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:``: annotations, never run."""
    hidden: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            hidden.update(id(n) for n in ast.walk(node))
    return hidden


def imports_of(module: str, source: str, *, is_package: bool, known: Iterable[str]) -> set[str]:
    """The migtui modules ``module`` imports at run time (function-level imports too)."""
    known = set(known)
    tree = ast.parse(source)
    hidden = _type_only(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                name = f"{target}.{alias.name}"
                found.add(name if name in known else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in known and m != module}


def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
    return {m: imports_of(m, p.read_text(encoding="utf-8"), is_package=p.name == "__init__.py", known=paths)
            for m, p in paths.items()}


def upward(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in sorted(edges.items()):
        for target in sorted(targets):
            mine, theirs = layer(module), layer(target)
            if mine == theirs:
                continue
            if mine not in RANK or theirs not in RANK:
                bad.append(f"{module} -> {target}: {mine if mine not in RANK else theirs} is in no layer")
            elif RANK[theirs] > RANK[mine] or (mine, theirs) in APART:
                bad.append(f"{module} ({mine}) imports {target} ({theirs})")
    return bad


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_every_package_has_a_layer() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages <= set(RANK), f"packages in no layer: {sorted(packages - set(RANK))}"


def test_no_upward_import() -> None:
    edges = graph()
    assert len(edges) > 80, "the walk found too few modules"
    assert not upward(edges), "imports against the layers:\n" + "\n".join(upward(edges))


def test_no_import_circle() -> None:
    assert not circles(graph()), f"import circles: {circles(graph())}"


def test_nothing_below_commands_imports_them() -> None:
    edges = graph()
    bad = [f"{m} -> {t}" for m, ts in edges.items() for t in ts
           if layer(t) == "commands" and layer(m) not in ("commands", "__main__")]
    assert not bad, bad


def test_the_rules_would_catch_offenders() -> None:
    known = {"migtui.view.client", "migtui.engine.engine", "migtui.commands.watch", "migtui.model.vmstate"}
    source = ("from ..engine.engine import Engine\nfrom typing import TYPE_CHECKING\n"
              "if TYPE_CHECKING:\n    from ..commands.watch import run\n"
              "def f():\n    from ..model import vmstate\n")
    found = imports_of("migtui.view.client", source, is_package=False, known=known)
    assert found == {"migtui.engine.engine", "migtui.model.vmstate"}  # the type-only import is not one
    assert upward({"migtui.view.client": found}) == ["migtui.view.client (view) imports migtui.engine.engine (engine)"]
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
