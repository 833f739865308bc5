"""The optional MLflow mirror against a real local tracking store (sqlite), through the radflow CLI."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from typer.testing import CliRunner

from flows.cli import app
from models.registry import Registry
from tests.project import ARTIFACT, edit_params, init_dvc_folder
from tests.tiny_pipeline import constant_model, register_tiny_champion, tiny_config


@pytest.fixture
def mirrored_registry(
    project_in_cwd: dict[str, Any], tmp_path: Path, mlflow: ModuleType
) -> tuple[Registry, str]:
    """A project mirroring to sqlite in tmp_path, with two registered versions (v2 champion); `mlflow`
    (the extra, tests/conftest.py) fails or skips it where the extra is missing."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    edit_params(tmp_path, f"registry.mlflow_uri={uri}")
    init_dvc_folder(tmp_path)  # its dvc.yaml names the registered model
    for seed in (0, 1):
        register_tiny_champion(
            project_in_cwd,
            tmp_path / f"m{seed}",
            constant_model(seed),
            tiny_config(seed),
            metrics={"roc_auc": 0.8 + seed / 10, "ci": {"roc_auc": [0.7, 0.9]}},
            model_card="# card\n",
            lineage={"git": {"commit": "abc", "dirty": False}, "packages": {"torch": "2"}},
            decision={"promoted": True},
        )
    return Registry(Path(project_in_cwd["paths"]["registry"])), uri


def _alias(client: object, alias: str) -> int:
    return int(client.get_model_version_by_alias(ARTIFACT, alias).version)  # type: ignore[attr-defined]


@pytest.mark.slow  # about 15 s: each command opens the sqlite store afresh
def test_mirror_versions_tags_aliases_and_files(
    mirrored_registry: tuple[Registry, str], tmp_path: Path, mlflow: ModuleType
) -> None:
    registry, uri = mirrored_registry
    runner = CliRunner()
    first = runner.invoke(app, ["registry", "mirror"])
    assert first.exit_code == 0, first.output
    assert "mirrored v1" in first.output and "mirrored v2" in first.output
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = {
        int(mv.tags["radflow.version"]): mv for mv in client.search_model_versions(f"name='{ARTIFACT}'")
    }
    assert sorted(versions) == [1, 2]
    row = registry.versions()[1]
    assert versions[2].tags["radflow.weights_sha256"] == row["weights_sha256"]
    assert '"commit": "abc"' in versions[2].tags["radflow.lineage"]
    assert _alias(client, "champion") == int(versions[2].version) and _alias(client, "previous") == int(
        versions[1].version
    )

    # Plain files, byte-identical to the registry's, and no pickle flavour.
    fetched = Path(client.download_artifacts(versions[2].run_id, "model", str(tmp_path / "fetched")))
    folder = registry.load(2).path
    assert {p.name for p in fetched.iterdir()} == {p.name for p in folder.iterdir()}
    assert all((fetched / p.name).read_bytes() == p.read_bytes() for p in folder.iterdir())
    assert client.get_run(versions[2].run_id).data.metrics["roc_auc"] == pytest.approx(0.9)

    again = runner.invoke(app, ["registry", "mirror"])  # idempotent
    assert again.exit_code == 0 and "already mirrors" in again.output
    assert len(client.search_model_versions(f"name='{ARTIFACT}'")) == 2

    # Aliases follow rollback and promote, through the commands that change the registry.
    assert runner.invoke(app, ["registry", "rollback"]).exit_code == 0
    assert _alias(client, "champion") == int(versions[1].version)
    with pytest.raises(mlflow.exceptions.MlflowException):
        client.get_model_version_by_alias(ARTIFACT, "previous")  # the registry has none after a rollback
    assert runner.invoke(app, ["registry", "promote", "2"]).exit_code == 0
    assert _alias(client, "champion") == int(versions[2].version) and _alias(client, "previous") == int(
        versions[1].version
    )


def test_an_unreachable_mirror_only_warns(
    mirrored_registry: tuple[Registry, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, _ = mirrored_registry
    edit_params(tmp_path, "registry.mlflow_uri=http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    result = CliRunner().invoke(app, ["registry", "rollback"])
    assert result.exit_code == 0 and "MLflow mirror" in result.output and "not updated" in result.output
    assert registry.aliases()["champion"] == 1  # the registry, the truth, changed regardless
