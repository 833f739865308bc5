"""The champion leaves the building: the real pipeline in a throwaway git repo with a local DVC remote,
then `dvc artifacts get --stage champion` from elsewhere, before and after a rollback."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from models.registry import Registry
from tests.leakscan import planted_identifiers, scan_for_identifiers
from tests.project import (
    ARTIFACT,
    commit_and_push,
    edit_params,
    fetch_champion,
    make_project,
    run_ok,
    same_model_files,
)

pytestmark = pytest.mark.slow


def _publish(project: Path, message: str) -> str:
    """What the README asks of the training host after a run: commit, push the data, tag (and push)."""
    commit_and_push(project, message)
    return run_ok(["radflow", "registry", "tag"], project)


def test_the_champion_is_fetched_by_name_before_and_after_a_rollback(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    run_ok(["dvc", "remote", "add", "-d", "local", str(tmp_path / "dvc-remote")], project)
    run_ok(["dvc", "repro"], project)
    first = _publish(project, "run 1")
    assert f"created {ARTIFACT}@v1.0.0" in first and f"created {ARTIFACT}#champion -> v1.0.0" in first
    registry = Registry(project / "registry")
    assert same_model_files(fetch_champion(project, tmp_path / "host-1"), registry.load(1).path)

    # Another candidate, which the gate refuses (here: floors only a flawless model meets; a floor above 1
    # is refused as a setting), registered on purpose.
    floors = ("promote.min_roc_auc=1", "promote.min_sensitivity=1", "promote.min_specificity=1")
    edit_params(project, "train.learning_rate=0.002", *floors)
    run_ok(["dvc", "repro"], project)
    assert registry.aliases() == {"champion": 1, "previous": None}
    run_ok(["radflow", "registry", "register", "data/model", "--reason", "reviewed", "--champion"], project)
    assert registry.aliases() == {"champion": 2, "previous": 1}
    second = _publish(project, "run 2")
    assert f"created {ARTIFACT}#champion -> v2.0.0" in second
    assert same_model_files(fetch_champion(project, tmp_path / "host-2"), registry.load(2).path)

    run_ok(["radflow", "registry", "rollback", "--reason", "e2e"], project)
    moved = run_ok(["radflow", "registry", "tag"], project)
    assert f"created {ARTIFACT}#champion -> v1.0.0" in moved
    fetched = fetch_champion(project, tmp_path / "host-3")
    assert same_model_files(fetched, registry.load(1).path)

    # The fetched folder is deployable as it is: predict recognises it as v1 of the local registry.
    image = next(path for path in sorted((project / "data/raw").rglob("*.dcm")))
    run_ok(
        ["radflow", "predict", str(image), "--model", str(fetched), "--out", str(tmp_path / "p.csv")], project
    )
    assert pd.read_csv(tmp_path / "p.csv")["model_version"].iloc[0] == "v1"

    # What leaves the host through tags and bundles carries no identifier planted in the demo archive.
    run_ok(["radflow", "registry", "export-bundle", "champion", str(tmp_path / "bundle")], project)
    tag_messages = run_ok(["git", "tag", "--list", "-n99"], project)
    identifiers = planted_identifiers(project / "data/raw")
    assert scan_for_identifiers([tmp_path / "bundle", fetched], identifiers, [tag_messages]) == []
