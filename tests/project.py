"""Throwaway radflow projects (git + DVC initialised) for pipeline-level tests, and commands run in them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tasks.common.params import load_params
from tests.defaults import REPO_ROOT, repo_params, write_params

PROJECT_FILES = ("dvc.yaml", ".dvcignore", ".gitignore")
PROJECT_DIRS = ("tasks", "models", "flows")
ARTIFACT = "radflow-classifier"  # dvc.yaml's model artifact: the name of GTO tags and `dvc artifacts get`

# A demo small enough for a test: few patients, tiny images, two quick epochs. Two epochs on 24 patients
# cannot reach the real gate's floors, beat the simple baseline or pass the learning check (evaluate still
# reports it), so the gate is relaxed: the first candidate must become champion.
SMALL_DEMO = (
    "demo.patients=24",
    "demo.image_size=96",
    "preprocess.image_size=64",
    "train.epochs=2",
    "evaluate.bootstrap_samples=50",
    "promote.bootstrap_samples=50",
    "promote.min_roc_auc=0",
    "promote.min_sensitivity=0",
    "promote.min_specificity=0",
    "promote.min_margin_over_baseline=-1",
    "promote.require_learned=false",
)


def tool_env() -> dict[str, str]:
    """The environment with this interpreter's bin folder (radflow, dvc) first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("RADFLOW_SALT", "test-salt-not-secret-salt-for-tests-32-bytes-long")
    # `dvc init` here writes no `core.analytics = false` (the repo's .dvc/config has it): without this,
    # every dvc command forks an analytics daemon that cannot reach the network and leaves a file in /tmp.
    env["DVC_NO_ANALYTICS"] = "1"
    for variable in ("GIT_AUTHOR", "GIT_COMMITTER"):
        env.setdefault(f"{variable}_NAME", "radflow tests")
        env.setdefault(f"{variable}_EMAIL", "tests@radflow.invalid")
    return env


def run(command: list[str], cwd: Path, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    """Run a command in the project; the caller asserts on the result."""
    return subprocess.run(
        command, cwd=cwd, env=tool_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def run_ok(command: list[str], cwd: Path, timeout: float = 1200) -> str:
    """Run a command that must succeed; returns its output (stdout, then stderr)."""
    result = run(command, cwd, timeout)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result.stdout + result.stderr


def make_project(root: Path, overrides: tuple[str, ...] = SMALL_DEMO) -> Path:
    """Copy the pipeline definition and code into `root/project`, write params.yaml with overrides, and
    commit it to a fresh git repo with DVC initialised — the state of a fresh clone."""
    project = root / "project"
    project.mkdir()
    for name in PROJECT_FILES:
        shutil.copy2(REPO_ROOT / name, project / name)
    for name in PROJECT_DIRS:
        shutil.copytree(REPO_ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    write_params(project, repo_params(*overrides))
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"]):
        run_ok(command, project)
    run_ok(["git", "commit", "-qm", "init"], project)
    return project


def edit_params(project: Path, *overrides: str) -> dict[str, Any]:
    """Apply `SECTION.KEY=VALUE` overrides to a project's params.yaml (comments are not kept)."""
    params = load_params(project / "params.yaml", overrides=list(overrides))
    write_params(project, params)
    return params


def file_contents(root: Path) -> dict[str, bytes]:
    """Every regular file under `root` (links left out), by path relative to it: two trees compare equal
    when they hold the same files with the same bytes."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def init_dvc_folder(folder: Path) -> Path:
    """Make `folder` a DVC project without git, with the repository's dvc.yaml (it names the artifact)."""
    shutil.copy2(REPO_ROOT / "dvc.yaml", folder / "dvc.yaml")
    run_ok(["dvc", "init", "--no-scm", "-q"], folder)
    return folder


def commit_and_push(project: Path, message: str) -> None:
    """Commit everything and push the DVC-tracked outputs to the default remote."""
    run_ok(["git", "add", "-A"], project)
    run_ok(["git", "commit", "-qm", message], project)
    run_ok(["dvc", "push", "-q"], project)


def fetch_champion(project: Path, host: Path) -> Path:
    """`dvc artifacts get PROJECT ARTIFACT --stage champion` from another folder, as a deploy host does."""
    host.mkdir(parents=True)
    run_ok(["dvc", "artifacts", "get", str(project), ARTIFACT, "--stage", "champion", "-o", "model"], host)
    return host / "model"


def same_model_files(fetched: Path, version_folder: Path) -> bool:
    """Whether `fetched` holds exactly a registry version's model.safetensors and config.json, as bytes."""
    names = ("model.safetensors", "config.json")
    same = all((fetched / name).read_bytes() == (version_folder / name).read_bytes() for name in names)
    return same and {path.name for path in fetched.iterdir()} == set(names)
