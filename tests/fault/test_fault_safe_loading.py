"""Safe loading: no code path in radflow unpickles anything (models are safetensors, arrays plain .npy).

The check parses the code (AST), so a comment or a string that mentions `pickle.load` is not a hit,
while `from pickle import load` or `np.load(path, allow_pickle=True)` is.
"""

from __future__ import annotations

import ast

import pytest

from tests.defaults import REPO_ROOT

pytestmark = pytest.mark.fault

CODE_DIRS = ("tasks", "models", "flows")
PICKLE_MODULES = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
UNSAFE_CALLS = {"pandas.read_pickle", "pd.read_pickle", "yaml.unsafe_load", "yaml.full_load", "yaml.load"}


def _dotted(node: ast.expr) -> str:
    """`np.load` for the call target `np.load`; '' for anything that is not a plain dotted name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        parent = _dotted(node.value)
        return f"{parent}.{node.attr}" if parent else ""
    return ""


def _keyword_is_true(call: ast.Call, name: str) -> bool:
    return any(
        k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True for k in call.keywords
    )


def unsafe_loads(source: str, where: str) -> list[str]:
    """Every pickle-capable load in `source`, as `where:line: what`."""
    hits: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = (
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            )
            hits += [
                f"{where}:{node.lineno}: imports {m}" for m in modules if m.split(".")[0] in PICKLE_MODULES
            ]
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name.split(".")[-1] == "load" and name.split(".")[0] in ("np", "numpy"):
            if _keyword_is_true(node, "allow_pickle"):
                hits.append(f"{where}:{node.lineno}: {name}(allow_pickle=True)")
        elif name == "torch.load" and not _keyword_is_true(node, "weights_only"):
            hits.append(f"{where}:{node.lineno}: torch.load without weights_only=True")
        elif name in UNSAFE_CALLS and not (name == "yaml.load" and _safe_yaml_loader(node)):
            hits.append(f"{where}:{node.lineno}: {name}")
    return hits


def _safe_yaml_loader(call: ast.Call) -> bool:
    loaders = [k.value for k in call.keywords if k.arg == "Loader"] + call.args[1:2]
    return any(_dotted(loader).endswith(("SafeLoader", "CSafeLoader")) for loader in loaders)


def test_the_checker_finds_each_unsafe_form() -> None:
    offending = """
import pickle
from joblib import load
import numpy as np, torch, yaml, pandas as pd
np.load("a.npy", allow_pickle=True)
torch.load("m.pt")
torch.load("m.pt", weights_only=False)
pd.read_pickle("x.pkl")
yaml.load(text)
yaml.load(text, Loader=yaml.Loader)
"""
    lines = [int(hit.split(":")[1]) for hit in unsafe_loads(offending, "example")]
    assert lines == [2, 3, 5, 6, 7, 8, 9, 10]  # every line but the harmless numpy/torch/yaml import
    harmless = """
# pickle.load(x) in a comment, and in a string: "torch.load(p)"
import numpy as np, torch, yaml
np.load("a.npy", mmap_mode="r")
torch.load("m.pt", map_location="cpu", weights_only=True)
yaml.load(text, Loader=yaml.SafeLoader)
yaml.safe_load(text)
"""
    assert unsafe_loads(harmless, "example") == []


def test_no_pickle_based_loading_in_radflow() -> None:
    files = [path for folder in CODE_DIRS for path in sorted((REPO_ROOT / folder).rglob("*.py"))]
    assert len(files) > 10  # the scan really covers the code base
    hits = [hit for path in files for hit in unsafe_loads(path.read_text(), str(path.relative_to(REPO_ROOT)))]
    assert hits == []
