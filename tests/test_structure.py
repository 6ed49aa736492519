"""The code's shape, checked: the packages form layers, each importing only the layers below
it (imports inside functions count), so there is no cycle, and the demo corner is reached only
from the top; and no function body is longer than a screen."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import align2

# Bottom to top. `align2` is the root package's own modules (errors, progress, embedded).
LAYERS = (
    "align2",
    "align2.data",
    "align2.models",
    "align2.cards",
    "align2.reward",
    "align2.rewrite",
    "align2.demo",
    "align2.evaluate",
    "align2.builders",
    "align2.publish",
    "align2.cli",
)
DEMO_USERS = {"align2.evaluate", "align2.publish", "align2.cli"}
ROOT = Path(__file__).resolve().parents[1]
MAX_BODY_LINES = 60  # a function's body, its signature and docstring aside


def package_folders() -> dict[str, Path]:
    import importlib

    folders = {}
    for name in LAYERS:
        module = importlib.import_module(name)
        folders[name] = Path(module.__file__).parent
    return folders


def layer_of(module: str) -> str | None:
    """The layer a dotted module name belongs to; `align2.__main__` is the command line."""
    if module == "align2.__main__":
        return "align2.cli"
    parts = module.split(".")
    if parts[0] != "align2":
        return None
    candidate = ".".join(parts[:2])
    return candidate if candidate in LAYERS else "align2"


def module_name(package: str, folder: Path, path: Path) -> str:
    relative = path.relative_to(folder).with_suffix("").parts
    parts = [p for p in relative if p != "__init__"]
    return ".".join([package, *parts])


def imported(tree: ast.AST, module: str) -> list[tuple[str, int]]:
    """Every align2 module a module imports, with the line, resolving relative imports."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: -node.level]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((base, node.lineno))
            # `from align2 import x` may import the subpackage align2.x
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return [(name, line) for name, line in found if name.split(".")[0] == "align2"]


def project_modules() -> dict[Path, str]:
    """Every module file of the project -> its dotted name (under its innermost package)."""
    modules = {}
    for package, folder in reversed(package_folders().items()):  # innermost first
        for path in sorted(folder.rglob("*.py")):
            modules.setdefault(path, module_name(package, folder, path))
    return modules


def import_edges() -> list[tuple[str, str, str]]:
    """(importing layer, imported layer, where) for every cross-layer import."""
    edges = []
    for path, module in project_modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for name, line in imported(tree, module):
            source, target = layer_of(module), layer_of(name)
            if target is not None and target != source:
                edges.append((source, target, f"{module}:{line} imports {name}"))
    return edges


def test_every_module_is_walked():
    """The walk sees the project's modules: a walk that finds nothing would pass vacuously."""
    folders = package_folders()
    modules = project_modules()
    assert modules[Path(align2.__file__).parent / "__main__.py"] == "align2.__main__"
    assert modules[ROOT / "data" / "sources" / "llava_json.py"] == "align2.data.sources.llava_json"
    for folder in ("builders", "data", "models", "reward", "rewrite", "publish", "demo"):
        assert folders[f"align2.{folder}"] == ROOT / folder
    assert len(modules) > 60
    assert len(import_edges()) > 100


def test_each_layer_imports_only_layers_below_it():
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = [where for source, target, where in import_edges() if rank[target] > rank[source]]
    assert upward == []


def test_only_the_top_layers_import_the_demo():
    users = {source for source, target, _ in import_edges() if target == "align2.demo"}
    assert users and users <= DEMO_USERS


@pytest.mark.parametrize(
    "code, module, expected",
    [
        ("from align2.builders.pipeline import run", "align2.reward.x", ["align2.builders"]),
        ("def f():\n    import align2.publish.release", "align2.data.y", ["align2.publish"]),
        ("from . import annotations", "align2.demo.pool", ["align2.demo"]),
        ("from align2 import errors, progress", "align2.cli.main", ["align2"]),
    ],
)
def test_the_reader_sees_every_import_form(code, module, expected):
    names = {layer_of(name) for name, _ in imported(ast.parse(code), module)}
    assert names == set(expected)


def body_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = function.body
    first = body[0]
    docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    if docstring and isinstance(first.value.value, str) and len(body) > 1:
        body = body[1:]
    return body[-1].end_lineno - body[0].lineno + 1


def long_functions() -> list[str]:
    found = []
    for path, module in project_modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            function = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            if function and (lines := body_lines(node)) > MAX_BODY_LINES:
                found.append(f"{module}.{node.name}: {lines} lines")
    return found


def test_no_function_body_is_over_60_lines():
    assert long_functions() == []


def test_body_lines_counts_the_body_only():
    source = 'def f(\n    a,\n):\n    """Doc\n    string."""\n    x = 1\n\n    return x\n'
    assert body_lines(ast.parse(source).body[0]) == 3
