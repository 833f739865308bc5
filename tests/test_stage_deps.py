"""Every project module a stage runs is one of its dvc.yaml deps, so editing it re-runs the stage.

Each stage module is imported in a fresh interpreter (what `radflow stage NAME` loads), and every file
of the project it pulled in must lie under one of the stage's deps. Package `__init__.py` files that
hold only a docstring run no code and are exempt.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flows.cli import STAGES
from tests.defaults import REPO_ROOT

# dvc.yaml stage -> the module its command runs: `radflow stage NAME`'s, and `radflow demo-data`'s.
STAGE_MODULES = {**STAGES, "demo_data": "tasks.demo_data"}
LOADED_FILES = (
    "import importlib, json, sys; importlib.import_module(sys.argv[1]); "
    "print(json.dumps([getattr(m, '__file__', None) for m in list(sys.modules.values())]))"
)


def project_files_loaded(module: str) -> set[Path]:
    """Files under the project root that importing `module` in a fresh interpreter executes."""
    output = subprocess.run(
        [sys.executable, "-c", LOADED_FILES, module],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    files = {Path(name).resolve() for name in json.loads(output) if name and Path(name).is_absolute()}
    return {
        path
        for path in files
        if path.is_relative_to(REPO_ROOT) and ".venv" not in path.relative_to(REPO_ROOT).parts
    }


def runs_code(path: Path) -> bool:
    """False for an `__init__.py` that is only a docstring."""
    body = ast.parse(path.read_text()).body
    return path.name != "__init__.py" or any(
        not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in body
    )


def stage_deps(stage: str) -> list[Path]:
    dvc = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())
    return [(REPO_ROOT / dep).resolve() for dep in dvc["stages"][stage]["deps"] if "${" not in dep]


def test_every_stage_is_checked() -> None:
    dvc = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())
    assert set(dvc["stages"]) == set(STAGE_MODULES)


@pytest.mark.parametrize("stage", sorted(STAGE_MODULES))
def test_stage_code_is_covered_by_its_deps(stage: str) -> None:
    deps = stage_deps(stage)
    loaded = project_files_loaded(STAGE_MODULES[stage])
    assert loaded, f"importing {STAGE_MODULES[stage]} loaded no project file"
    outside = sorted(
        str(path.relative_to(REPO_ROOT))
        for path in loaded
        if runs_code(path) and not any(path == dep or path.is_relative_to(dep) for dep in deps)
    )
    assert not outside, f"stage {stage!r} runs code that is not in its dvc.yaml deps: {outside}"
