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
from tests.defaults import REPO_PARAMS, REPO_ROOT
from tests.project import ARTIFACT, commit_and_push, fetch_champion, run_ok, same_model_files
from tests.tiny_pipeline import tiny_config

pytestmark = pytest.mark.slow  # git + dvc subprocesses: about half a minute

COPY_STAGE = {
    "cmd": "python -c \"import shutil; shutil.copytree('incoming', '${paths.model}', dirs_exist_ok=True)\"",
    "deps": ["incoming"],
    "outs": ["${paths.model}"],
}


@pytest.fixture
def copy_train_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git + DVC project with the real artifacts: entry, a copy-only train stage and a local remote."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy2(REPO_PARAMS, root / "params.yaml")
    declared = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())
    (root / "dvc.yaml").write_text(
        yaml.safe_dump({"artifacts": declared["artifacts"], "stages": {"train": COPY_STAGE}})
    )
    (root / ".gitignore").write_text("/registry/\n")
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        run_ok(command, root)
    run_ok(["dvc", "remote", "add", "-d", "local", str(tmp_path / "remote")], root)
    run_ok(["git", "add", "-A"], root)
    run_ok(["git", "commit", "-qm", "init"], root)
    monkeypatch.chdir(root)
    return root


def _train(project: Path, seed: int) -> None:
    """A new candidate through the (copy) train stage, registered as champion as promote would."""
    torch.manual_seed(seed)
    config = tiny_config(seed)
    shutil.rmtree(project / "incoming", ignore_errors=True)
    models.save_model(models.build_model(config["architecture"]), config, project / "incoming")
    run_ok(["dvc", "repro", "-q"], project)
    Registry(project / "registry").register_champion(
        project / "data/model", metrics={"roc_auc": 0.5}, model_card="# card\n", lineage={}, decision={}
    )


def test_tags_follow_the_registry_and_dvc_fetches_the_champion(
    copy_train_project: Path, tmp_path: Path
) -> None:
    project = copy_train_project
    runner = CliRunner()
    registry = Registry(project / "registry")
    _train(project, seed=1)

    pending = runner.invoke(app, ["registry", "tag"])  # the run is not committed yet
    assert pending.exit_code == 1
    assert "git add dvc.lock params.yaml && git commit" in pending.output and "champion" in pending.output

    commit_and_push(project, "model v1")
    tagged = runner.invoke(app, ["registry", "tag"])
    assert tagged.exit_code == 0, tagged.output
    assert (
        f"created {ARTIFACT}@v1.0.0" in tagged.output
        and f"created {ARTIFACT}#champion -> v1.0.0" in tagged.output
    )
    tags_after_first = run_ok(["git", "tag", "--list"], project).split()
    again = runner.invoke(app, ["registry", "tag"])  # idempotent: nothing new
    assert again.exit_code == 0 and "created" not in again.output
    assert run_ok(["git", "tag", "--list"], project).split() == tags_after_first

    _train(project, seed=2)
    commit_and_push(project, "model v2")
    second = runner.invoke(app, ["registry", "tag"])
    assert second.exit_code == 0 and f"created {ARTIFACT}#previous -> v1.0.0" in second.output
    fetched = fetch_champion(project, tmp_path / "host-a")
    assert same_model_files(fetched, registry.load(2).path)

    assert runner.invoke(app, ["registry", "rollback", "--reason", "test"]).exit_code == 0
    moved = runner.invoke(app, ["registry", "tag"])
    assert f"created {ARTIFACT}#champion -> v1.0.0" in moved.output  # a rollback leaves no `previous`
    fetched = fetch_champion(project, tmp_path / "host-b")
    assert same_model_files(fetched, registry.load(1).path)

    # predict --model accepts the fetched folder, recognised (and checked) against the local registry.
    assert resolve_model(str(fetched), project / "registry").label == "v1"
    (fetched / "config.json").write_text((fetched / "config.json").read_text().replace("tiny", "tampered"))
    with pytest.raises(
        RadflowError, match=r"weights are registry version\(s\) \[1\] but its config.json differs"
    ):
        resolve_model(str(fetched), project / "registry")


def test_a_version_whose_run_was_never_committed_is_reported(copy_train_project: Path) -> None:
    project = copy_train_project
    _train(project, seed=1)
    commit_and_push(project, "model v1")
    _train(project, seed=2)  # v2's dvc.lock is overwritten by v3's before anyone commits it
    _train(project, seed=3)
    commit_and_push(project, "model v3")
    result = CliRunner().invoke(app, ["registry", "tag"])
    assert result.exit_code == 0, result.output  # the champion (v3) is tagged: only `previous` lags
    assert f"created {ARTIFACT}#champion -> v3.0.0" in result.output
    assert "v2: no commit's dvc.lock holds its weights" in result.output
    assert "previous (v2) is not assigned" in result.output
    assert "radflow registry export-bundle 2 DIR" in result.output
