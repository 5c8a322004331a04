"""The code's shape: no import circle, imports pointing one way between rooms, small modules.

Module-level imports only (what runs when a module is imported); imports under
``if TYPE_CHECKING:`` and inside functions are left out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("agent", "gui", "sync")
MAX_LINES = 500

# A room never imports the rooms after "->" at module level: dependencies point
# from the daemon and the CLI down to control, hub, platform and exai, never back.
FORBIDDEN = {
    "sync": ("agent", "gui"),
    "agent": ("gui",),
    "agent.control": ("agent.daemon", "agent.cli"),
    "agent.hub": ("agent.daemon", "agent.cli", "agent.control", "agent.exai"),
    "agent.platform": (
        "agent.daemon",
        "agent.cli",
        "agent.control",
        "agent.exai",
        "agent.hub",
        "agent.config",
        "agent.context",
    ),
    "agent.exai": ("agent.daemon", "agent.cli"),
    "agent.daemon": ("agent.cli",),
}
GUI_MAY_IMPORT = ("agent.control.client", "agent.control.protocol", "agent.control.payloads")
"""The tray reaches the agent through its control API only (and finds its socket)."""
GUI_MAY_ALSO = ("agent.platform.paths",)


def module_files(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _type_checking(test: ast.expr) -> bool:
    return any(
        isinstance(n, ast.Name | ast.Attribute) and "TYPE_CHECKING" in ast.unparse(n)
        for n in ast.walk(test)
    )


def _module_level(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _type_checking(node.test):
                yield from _module_level(node.body)
            yield from _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _module_level(block)
            for handler in node.handlers:
                yield from _module_level(handler.body)
        elif isinstance(node, ast.With):
            yield from _module_level(node.body)


def _everywhere(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.walk(ast.Module(body=body, type_ignores=[])):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node


def imports_of(name: str, path: Path, modules: dict[str, Path], *, deep: bool = False) -> set[str]:
    """The project's modules ``name`` imports when it is imported (``deep``: also those
    it imports inside functions and for type checking)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    body = ast.parse(path.read_text("utf-8")).body
    for node in (_everywhere if deep else _module_level)(body):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, *([node.module] if node.module else [])])
            targets = [base, *(f"{base}.{a.name}" for a in node.names)]
        found.update(t for t in targets if t in modules and t != name)
    return found


def import_graph(
    root: Path = ROOT, packages: tuple[str, ...] = PACKAGES, *, deep: bool = False
) -> dict[str, set[str]]:
    modules = module_files(root, packages)
    return {name: imports_of(name, path, modules, deep=deep) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _in(name: str, room: str) -> bool:
    return name == room or name.startswith(room + ".")


def test_no_import_circle() -> None:
    assert cycles(import_graph()) == []


def test_no_circle_through_agent_or_gui_even_inside_functions() -> None:
    """A circle hidden in a function-level or type-only import is a circle all the same.
    (sync/ has some until the engine branch's reshaping lands; they are not checked here.)"""
    ours = [
        c
        for c in cycles(import_graph(deep=True))
        if any(_in(m, "agent") or _in(m, "gui") for m in c)
    ]
    assert ours == []


def test_the_circle_check_finds_a_circle(tmp_path: Path) -> None:
    pkg = tmp_path / "agent"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "service.py").write_text("from agent.handlers import register\n")
    (pkg / "handlers.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from agent import held\n"
        "if TYPE_CHECKING:\n    from agent.service import Service\n"
    )
    (pkg / "held.py").write_text("def f():\n    from agent.service import x\n")
    graph = import_graph(tmp_path, ("agent",))
    assert cycles(graph) == []  # type-only and function-level imports are not circles
    assert cycles(import_graph(tmp_path, ("agent",), deep=True)) == [
        ["agent.handlers", "agent.held", "agent.service"]
    ]
    (pkg / "held.py").write_text("from . import service\n")
    assert cycles(import_graph(tmp_path, ("agent",))) == [
        ["agent.handlers", "agent.held", "agent.service"]
    ]


def test_rooms_import_one_way() -> None:
    wrong = []
    for name, targets in import_graph().items():
        for room, forbidden in FORBIDDEN.items():
            if not _in(name, room):
                continue
            wrong += [f"{name} -> {t}" for t in targets if any(_in(t, f) for f in forbidden)]
        if _in(name, "gui"):
            wrong += [
                f"{name} -> {t}"
                for t in targets
                if _in(t, "agent") and t not in GUI_MAY_IMPORT + GUI_MAY_ALSO
            ]
    assert wrong == []


def _long_modules(package: str) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}: {n} lines"
        for path in sorted((ROOT / package).rglob("*.py"))
        if (n := len(path.read_text("utf-8").splitlines())) > MAX_LINES
    ]


@pytest.mark.parametrize("package", ["agent", "gui"])
def test_no_module_over_500_lines(package: str) -> None:
    assert _long_modules(package) == []


def test_no_sync_module_over_500_lines() -> None:
    assert _long_modules("sync") == []
