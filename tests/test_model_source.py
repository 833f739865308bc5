"""`radflow predict --model`: registry refs, and model folders checked against what the registry recorded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import models
from models.registry import Registry
from models.registry.source import resolve_model
from tasks.common.errors import RadflowError
from tests.tiny_pipeline import constant_model, tiny_config


def _register_same_weights(registry: Registry, folder: Path, note: str) -> int:
    """The same weights under another config (retraining can reproduce weights exactly)."""
    config = tiny_config()
    config["train"]["note"] = note
    torch.manual_seed(0)
    models.save_model(constant_model(), config, folder)
    return registry.register_champion(folder, metrics={}, model_card="", lineage={}, decision={})


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    registry = Registry(tmp_path / "registry")
    _register_same_weights(registry, tmp_path / "a", "first")
    _register_same_weights(registry, tmp_path / "b", "second")
    return registry


def _fetched(registry: Registry, version: int, where: Path) -> Path:
    """The two files `dvc artifacts get` brings: no checksums.json, no metrics."""
    where.mkdir()
    for name in ("model.safetensors", "config.json"):
        shutil.copy2(registry.load(version).path / name, where / name)
    return where


def test_registry_refs_and_recognised_folders(registry: Registry, tmp_path: Path) -> None:
    assert resolve_model("previous", registry.root).label == "v1"
    assert resolve_model(str(_fetched(registry, 1, tmp_path / "one")), registry.root).label == "v1"
    assert resolve_model(str(_fetched(registry, 2, tmp_path / "two")), registry.root).version == 2
    copied = tmp_path / "copied-version"
    shutil.copytree(registry.load(2).path, copied)  # a whole version folder, with its checksums.json
    assert resolve_model(str(copied), registry.root).label == "v2"


def test_folders_that_differ_from_the_records_are_refused(registry: Registry, tmp_path: Path) -> None:
    changed = _fetched(registry, 1, tmp_path / "changed")
    config = json.loads((changed / "config.json").read_text())
    config["classes"] = ["a", "b", "c"]
    (changed / "config.json").write_text(json.dumps(config))
    with pytest.raises(RadflowError, match=r"version\(s\) \[1, 2\] but its config.json differs"):
        resolve_model(str(changed), registry.root)
    copied = tmp_path / "copied-version"
    shutil.copytree(registry.load(1).path, copied)
    (copied / "config.json").write_text((changed / "config.json").read_text())
    with pytest.raises(RadflowError, match=r"differ from its checksums\.json"):
        resolve_model(str(copied), registry.root)


def test_unregistered_folders_and_ambiguous_names(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    models.save_model(models.build_model(tiny_config()["architecture"]), tiny_config(), other)
    source = resolve_model(str(other), registry.root)
    assert source.version is None and "unregistered here" in source.label
    assert resolve_model(str(other), tmp_path / "no-registry").version is None  # a deploy host
    (tmp_path / "champion").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RadflowError, match="both a registry reference and a folder"):
        resolve_model("champion", registry.root)
    with pytest.raises(RadflowError, match="no model in"):
        resolve_model(str(tmp_path / "champion") + "/", registry.root)
