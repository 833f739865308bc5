"""The champion leaves the building: the real pipeline in a throwaway git repo with a local DVC remote,
then `dvc artifacts get --stage champion` from elsewhere, before and after a rollback."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from models.registry import Registry
from tasks.common.params import apply_override
from tests.leakscan import planted_identifiers, scan_for_identifiers
from tests.project import make_project, run

pytestmark = pytest.mark.slow

ARTIFACT = "radflow-classifier"


def _ok(command: list[str], cwd: Path) -> str:
    result = run(command, cwd)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result.stdout + result.stderr


def _publish(project: Path, message: str) -> str:
    """What the README asks of the training host after a run: commit, push the data, tag (and push)."""
    _ok(["git", "add", "-A"], project)
    _ok(["git", "commit", "-qm", message], project)
    _ok(["dvc", "push", "-q"], project)
    return _ok(["radflow", "registry", "tag"], project)


def _fetch_champion(project: Path, host: Path) -> Path:
    host.mkdir()
    _ok(["dvc", "artifacts", "get", str(project), ARTIFACT, "--stage", "champion", "-o", "model"], host)
    return host / "model"


def _identical(fetched: Path, registered: Path) -> bool:
    return all(
        (fetched / name).read_bytes() == (registered / name).read_bytes()
        for name in ("model.safetensors", "config.json")
    )


def test_the_champion_is_fetched_by_name_before_and_after_a_rollback(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    _ok(["dvc", "remote", "add", "-d", "local", str(tmp_path / "dvc-remote")], project)
    _ok(["dvc", "repro"], project)
    first = _publish(project, "run 1")
    assert f"created {ARTIFACT}@v1.0.0" in first and f"created {ARTIFACT}#champion -> v1.0.0" in first
    registry = Registry(project / "registry")
    assert _identical(_fetch_champion(project, tmp_path / "host-1"), registry.load(1).path)

    # Another candidate, which the gate cannot judge (here: an unreachable floor), registered on purpose.
    params = yaml.safe_load((project / "params.yaml").read_text())
    for override in ("train.learning_rate=0.002", "promote.min_roc_auc=2"):
        apply_override(params, override)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _ok(["dvc", "repro"], project)
    assert registry.aliases() == {"champion": 1, "previous": None}
    _ok(["radflow", "registry", "register", "data/model", "--reason", "reviewed", "--champion"], project)
    assert registry.aliases() == {"champion": 2, "previous": 1}
    second = _publish(project, "run 2")
    assert f"created {ARTIFACT}#champion -> v2.0.0" in second
    assert _identical(_fetch_champion(project, tmp_path / "host-2"), registry.load(2).path)

    _ok(["radflow", "registry", "rollback", "--reason", "e2e"], project)
    moved = _ok(["radflow", "registry", "tag"], project)
    assert f"created {ARTIFACT}#champion -> v1.0.0" in moved
    fetched = _fetch_champion(project, tmp_path / "host-3")
    assert _identical(fetched, registry.load(1).path)

    # The fetched folder is deployable as it is: predict recognises it as v1 of the local registry.
    image = next(path for path in sorted((project / "data/raw").rglob("*.dcm")))
    _ok(
        ["radflow", "predict", str(image), "--model", str(fetched), "--out", str(tmp_path / "p.csv")], project
    )
    assert pd.read_csv(tmp_path / "p.csv")["model_version"].iloc[0] == "v1"

    # What leaves the host through tags and bundles carries no identifier planted in the demo archive.
    _ok(["radflow", "registry", "export-bundle", "champion", str(tmp_path / "bundle")], project)
    tag_messages = _ok(["git", "tag", "--list", "-n99"], project)
    identifiers = planted_identifiers(project / "data/raw")
    assert scan_for_identifiers([tmp_path / "bundle", fetched], identifiers, [tag_messages]) == []
