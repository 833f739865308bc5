"""GTO tags from the registry, fetched back with `dvc artifacts get --stage`: real git, DVC, GTO, a local
DVC remote; the train stage only copies a prepared model so the test stays quick (the real pipeline is
tests/test_champion_e2e.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

import models
from flows.cli import app
from models.registry import Registry
from models.registry.source import resolve_model
from tasks.common.errors import RadflowError
from tests.project import REPO_ROOT, run
from tests.tiny_pipeline import tiny_config

pytestmark = pytest.mark.slow  # git + dvc subprocesses: about half a minute

ARTIFACT = "radflow-classifier"
COPY_STAGE = {
    "cmd": "python -c \"import shutil; shutil.copytree('incoming', '${paths.model}', dirs_exist_ok=True)\"",
    "deps": ["incoming"],
    "outs": ["${paths.model}"],
}


def _ok(command: list[str], cwd: Path) -> str:
    result = run(command, cwd, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git + DVC project with the real artifacts: entry, a copy-only train stage and a local remote."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy2(REPO_ROOT / "params.yaml", root / "params.yaml")
    declared = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())
    (root / "dvc.yaml").write_text(
        yaml.safe_dump({"artifacts": declared["artifacts"], "stages": {"train": COPY_STAGE}})
    )
    (root / ".gitignore").write_text("/registry/\n")
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        _ok(command, root)
    _ok(["dvc", "remote", "add", "-d", "local", str(tmp_path / "remote")], root)
    _ok(["git", "add", "-A"], root)
    _ok(["git", "commit", "-qm", "init"], root)
    monkeypatch.chdir(root)
    return root


def _train(project: Path, seed: int) -> None:
    """A new candidate through the (copy) train stage, registered as champion as promote would."""
    torch.manual_seed(seed)
    config = tiny_config(seed)
    shutil.rmtree(project / "incoming", ignore_errors=True)
    models.save_model(models.build_model(config["architecture"]), config, project / "incoming")
    _ok(["dvc", "repro", "-q"], project)
    Registry(project / "registry").register_champion(
        project / "data/model", metrics={"roc_auc": 0.5}, model_card="# card\n", lineage={}, decision={}
    )


def _commit_and_push(project: Path, message: str) -> None:
    _ok(["git", "add", "-A"], project)
    _ok(["git", "commit", "-qm", message], project)
    _ok(["dvc", "push", "-q"], project)


def _get_champion(project: Path, where: Path) -> Path:
    """`dvc artifacts get REPO NAME --stage champion` from another folder, as a deploy host would."""
    where.mkdir(parents=True)
    _ok(["dvc", "artifacts", "get", str(project), ARTIFACT, "--stage", "champion", "-o", "model"], where)
    return where / "model"


def _same_files(fetched: Path, version_folder: Path) -> bool:
    names = ("model.safetensors", "config.json")
    return all((fetched / name).read_bytes() == (version_folder / name).read_bytes() for name in names) and {
        path.name for path in fetched.iterdir()
    } == set(names)


def test_tags_follow_the_registry_and_dvc_fetches_the_champion(project: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    registry = Registry(project / "registry")
    _train(project, seed=1)

    pending = runner.invoke(app, ["registry", "tag"])  # the run is not committed yet
    assert pending.exit_code == 1
    assert "git add dvc.lock params.yaml && git commit" in pending.output and "champion" in pending.output

    _commit_and_push(project, "model v1")
    tagged = runner.invoke(app, ["registry", "tag"])
    assert tagged.exit_code == 0, tagged.output
    assert (
        f"created {ARTIFACT}@v1.0.0" in tagged.output
        and f"created {ARTIFACT}#champion -> v1.0.0" in tagged.output
    )
    tags_after_first = _ok(["git", "tag", "--list"], project).split()
    again = runner.invoke(app, ["registry", "tag"])  # idempotent: nothing new
    assert again.exit_code == 0 and "created" not in again.output
    assert _ok(["git", "tag", "--list"], project).split() == tags_after_first

    _train(project, seed=2)
    _commit_and_push(project, "model v2")
    second = runner.invoke(app, ["registry", "tag"])
    assert second.exit_code == 0 and f"created {ARTIFACT}#previous -> v1.0.0" in second.output
    fetched = _get_champion(project, tmp_path / "host-a")
    assert _same_files(fetched, registry.load(2).path)

    assert runner.invoke(app, ["registry", "rollback", "--reason", "test"]).exit_code == 0
    moved = runner.invoke(app, ["registry", "tag"])
    assert f"created {ARTIFACT}#champion -> v1.0.0" in moved.output  # a rollback leaves no `previous`
    fetched = _get_champion(project, tmp_path / "host-b")
    assert _same_files(fetched, registry.load(1).path)

    # predict --model accepts the fetched folder, recognised (and checked) against the local registry.
    assert resolve_model(str(fetched), project / "registry").label == "v1"
    (fetched / "config.json").write_text((fetched / "config.json").read_text().replace("tiny", "tampered"))
    with pytest.raises(
        RadflowError, match=r"weights are registry version\(s\) \[1\] but its config.json differs"
    ):
        resolve_model(str(fetched), project / "registry")


def test_a_version_whose_run_was_never_committed_is_reported(project: Path) -> None:
    _train(project, seed=1)
    _commit_and_push(project, "model v1")
    _train(project, seed=2)  # v2's dvc.lock is overwritten by v3's before anyone commits it
    _train(project, seed=3)
    _commit_and_push(project, "model v3")
    result = CliRunner().invoke(app, ["registry", "tag"])
    assert result.exit_code == 0, result.output  # the champion (v3) is tagged: only `previous` lags
    assert f"created {ARTIFACT}#champion -> v3.0.0" in result.output
    assert "v2: no commit's dvc.lock holds its weights" in result.output
    assert "previous (v2) is not assigned" in result.output
    assert "radflow registry export-bundle 2 DIR" in result.output
