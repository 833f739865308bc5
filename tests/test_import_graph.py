"""The import graph of flows/, tasks/ and models/ has no cycles, and `tasks.common` never imports `models`.

A cycle means two modules that cannot be read, tested or changed apart; `tasks.common` sits below
`models` (models use its atomic writes and hashing), so an arrow from it back up to `models` is a cycle
waiting to happen. Every import statement counts, those inside functions included: a deferred import
hides a cycle from the interpreter, not from a reader. Granularity is the module: `from a.b import c`
is an arrow to `a.b.c` when that is a module, else to `a.b`.
"""

from __future__ import annotations

import ast
import graphlib
from collections.abc import Iterator
from pathlib import Path

from tests.defaults import REPO_ROOT

PACKAGES = ("flows", "tasks", "models")


def project_modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the project's packages."""
    modules = {}
    for package in PACKAGES:
        for path in (REPO_ROOT / package).rglob("*.py"):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_modules(module: str, path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """The project modules that import statements anywhere in `path` load, relative imports resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:
                # `from a.b import c` loads module a.b.c if there is one, else takes the name c from a.b.
                name = f"{base}.{alias.name}"
                if name in modules:
                    yield name
                elif base in modules:
                    yield base


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    modules = project_modules()
    return {
        module: {target for target in imported_modules(module, path, modules) if target != module}
        for module, path in modules.items()
    }


def test_graph_sees_imports() -> None:
    """The parser finds module-level, function-level and relative imports (else the checks pass vacuously)."""
    graph = import_graph()
    assert "tasks.common.errors" in graph["flows.retrain"]
    assert "flows.retrain" in graph["flows.deployment"]  # imported inside serve_retrain
    assert len(graph) > 100


def test_no_import_cycles() -> None:
    try:
        tuple(graphlib.TopologicalSorter(import_graph()).static_order())
    except graphlib.CycleError as error:
        raise AssertionError(f"import cycle: {' -> '.join(error.args[1])}") from None


def test_common_does_not_import_models() -> None:
    upward = {
        (module, target)
        for module, targets in import_graph().items()
        if module.startswith("tasks.common")
        for target in targets
        if target == "models" or target.startswith("models.")
    }
    assert not upward, f"tasks.common imports the higher-level models package: {sorted(upward)}"
