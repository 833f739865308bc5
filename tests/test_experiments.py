"""The classic AlexNet ablations as DVC experiments on the REAL pipeline (issue 4): `dvc exp run -S`
alone, no code change, exactly as README's "Experiments" section documents them.

Two experiments combine the knobs to keep the time down (small demo, 64 px, 2 epochs): the 2012
network (original layout, LRN) with LeakyReLU and dropout 0.3, and a ResNet-18 linear probe.
DenseNet-121 is left out: same code path as ResNet-18 (a MONAI network), several times slower.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.project import make_project, run

pytestmark = pytest.mark.slow

EXPERIMENTS = {
    "orig-lrn-leaky": (
        "train.norm=lrn",
        "train.layout=original",
        "train.activation=leaky_relu",
        "train.dropout=0.3",
    ),
    "resnet-probe": ("train.model=resnet18", "train.mode=linear_probe"),
}
# What each experiment's config.json must say: (section, key) -> value.
EXPECTED_CONFIG: dict[str, dict[tuple[str, str], Any]] = {
    "orig-lrn-leaky": {
        ("architecture", "norm"): "lrn",
        ("architecture", "layout"): "original",
        ("architecture", "activation"): "leaky_relu",
        ("architecture", "dropout"): 0.3,
        ("architecture", "name"): "alexnet",
    },
    "resnet-probe": {("architecture", "name"): "resnet18", ("train", "mode"): "linear_probe"},
}


@pytest.fixture(scope="module")
def experiments(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, Any]]]:
    """A project after one committed `dvc repro` and the two experiments; returns it with each
    experiment's config.json as the workspace held it right after that experiment."""
    project = make_project(tmp_path_factory.mktemp("experiments"))
    baseline = run(["dvc", "repro"], project)
    assert baseline.returncode == 0, (baseline.stdout + baseline.stderr)[-5000:]
    committed = run(["git", "add", "dvc.lock", "params.yaml"], project)
    assert committed.returncode == 0, committed.stderr
    committed = run(["git", "commit", "-qm", "baseline"], project)
    assert committed.returncode == 0, committed.stdout + committed.stderr
    configs = {}
    for name, overrides in EXPERIMENTS.items():
        command = ["dvc", "exp", "run", "-n", name]
        for override in overrides:
            command += ["-S", override]
        result = run(command, project)
        assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
        assert "Running stage 'train'" in result.stdout
        configs[name] = json.loads((project / "data/model/config.json").read_text())
    return project, configs


def exp_show(project: Path) -> dict[str, dict[str, Any]]:
    """`dvc exp show --json` flattened to experiment name -> {"params": ..., "metrics": ...}."""
    shown = run(["dvc", "exp", "show", "--json"], project, timeout=300)
    assert shown.returncode == 0, shown.stderr
    found = {}
    for commit in json.loads(shown.stdout):
        for experiment in commit.get("experiments") or []:
            for revision in experiment["revs"]:
                data = revision["data"]
                found[revision["name"]] = {
                    "params": data["params"]["params.yaml"]["data"],
                    "metrics": {path: entry["data"] for path, entry in data["metrics"].items()},
                }
    return found


def test_each_ablation_ran_and_its_model_reflects_the_knobs(
    experiments: tuple[Path, dict[str, dict[str, Any]]],
) -> None:
    _, configs = experiments
    for name, expected in EXPECTED_CONFIG.items():
        actual = {(section, key): configs[name][section][key] for section, key in expected}
        assert actual == expected, name


def test_exp_show_lists_both_with_params_and_roc_auc(
    experiments: tuple[Path, dict[str, dict[str, Any]]],
) -> None:
    project, _ = experiments
    shown = exp_show(project)
    assert set(EXPERIMENTS) <= set(shown), sorted(shown)
    for name, overrides in EXPERIMENTS.items():
        params = shown[name]["params"]
        for override in overrides:
            key, value = override.split("=")
            section, field = key.split(".")
            assert str(params[section][field]) == value, (name, override)
        metrics = shown[name]["metrics"]["data/evaluation/metrics.json"]
        assert 0.0 <= metrics["roc_auc"] <= 1.0


def test_exp_apply_restores_an_experiments_model(
    experiments: tuple[Path, dict[str, dict[str, Any]]],
) -> None:
    project, _ = experiments
    applied = run(["dvc", "exp", "apply", "orig-lrn-leaky"], project, timeout=300)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    config = json.loads((project / "data/model/config.json").read_text())
    assert config["architecture"]["norm"] == "lrn" and config["architecture"]["layout"] == "original"
