"""Where a registered model came from: git commit, dvc.lock hashes of data and params, package versions."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

PACKAGES = ("torch", "monai", "numpy", "scikit-learn", "safetensors", "pydicom", "dvc", "radflow")


def git_commit(root: Path) -> dict[str, Any]:
    """HEAD commit and whether the working tree had uncommitted changes (unknown outside a git repo)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def dvc_lock_hashes(lock_file: Path) -> dict[str, Any]:
    """Per stage: the md5 of each dependency/output and the params values, as recorded in dvc.lock."""
    if not lock_file.is_file():
        return {}
    stages = (yaml.safe_load(lock_file.read_text()) or {}).get("stages", {})
    lineage: dict[str, Any] = {}
    for name, stage in stages.items():
        files = {
            entry["path"]: entry.get("md5") or entry.get("hash")
            for kind in ("deps", "outs")
            for entry in stage.get(kind, [])
        }
        lineage[name] = {"files": files, "params": stage.get("params", {})}
    return lineage


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that decide how a model behaves."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def collect_lineage(project_root: Path) -> dict[str, Any]:
    """The lineage record stored with every registry version."""
    return {
        "git": git_commit(project_root),
        "dvc_lock": dvc_lock_hashes(project_root / "dvc.lock"),
        "packages": package_versions(),
    }
