"""The classic AlexNet ablations as DVC experiments on the REAL pipeline (issue 4): `dvc exp run -S`
alone, no code change, exactly as README's "Experiments" section documents them.

Two experiments combine the knobs to keep the time down (small demo, 64 px, 2 epochs): the 2012
network (original layout, LRN) with LeakyReLU and dropout 0.3, and a ResNet-18 linear probe.
DenseNet-121 is left out: same code path as ResNet-18 (a MONAI network), several times slower.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from safetensors import safe_open

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


@dataclass(frozen=True)
class Outcome:
    """What a run left in the workspace: the model's config.json, its weights' tensor shapes and the
    evaluation's metrics.json."""

    config: dict[str, Any]
    shapes: dict[str, tuple[int, ...]]
    metrics: dict[str, Any]


def outcome(project: Path) -> Outcome:
    model = project / "data/model"
    with safe_open(str(model / "model.safetensors"), "pt") as weights:
        shapes = {key: tuple(weights.get_slice(key).get_shape()) for key in weights.keys()}  # noqa: SIM118
    return Outcome(
        json.loads((model / "config.json").read_text()),
        shapes,
        json.loads((project / "data/evaluation/metrics.json").read_text()),
    )


@pytest.fixture(scope="module")
def experiments(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Outcome]]:
    """A project after one committed `dvc repro` and the two experiments; returns it with what the
    workspace held right after the baseline run ("baseline") and after each experiment."""
    project = make_project(tmp_path_factory.mktemp("experiments"))
    baseline = run(["dvc", "repro"], project)
    assert baseline.returncode == 0, (baseline.stdout + baseline.stderr)[-5000:]
    outcomes = {"baseline": outcome(project)}
    committed = run(["git", "add", "dvc.lock", "params.yaml"], project)
    assert committed.returncode == 0, committed.stderr
    committed = run(["git", "commit", "-qm", "baseline"], project)
    assert committed.returncode == 0, committed.stdout + committed.stderr
    for name, overrides in EXPERIMENTS.items():
        command = ["dvc", "exp", "run", "-n", name]
        for override in overrides:
            command += ["-S", override]
        result = run(command, project)
        assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
        assert "Running stage 'train'" in result.stdout
        outcomes[name] = outcome(project)
    return project, outcomes


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
    experiments: tuple[Path, dict[str, Outcome]],
) -> None:
    _, outcomes = experiments
    for name, expected in EXPECTED_CONFIG.items():
        config = outcomes[name].config
        actual = {(section, key): config[section][key] for section, key in expected}
        assert actual == expected, name
    # The trained weights are the networks the knobs describe, not the default's: the 2012 layout's
    # first convolution has 96 filters (torchvision's 64), ResNet-18's tensors are its residual stages.
    baseline, original, resnet = (outcomes[name].shapes for name in ("baseline", *EXPERIMENTS))
    assert baseline["features.0.weight"][0] == 64 and original["features.0.weight"][0] == 96
    assert not any(key.startswith("features.") for key in resnet), sorted(resnet)[:5]
    assert any("layer4" in key for key in resnet) and not any("layer4" in key for key in baseline)


def test_exp_show_reports_each_experiments_own_results(
    experiments: tuple[Path, dict[str, Outcome]],
) -> None:
    """`dvc exp show` lists both, each with the metrics its own run wrote (not the baseline's)."""
    project, outcomes = experiments
    shown = exp_show(project)
    assert set(EXPERIMENTS) <= set(shown), sorted(shown)
    for name in EXPERIMENTS:
        assert shown[name]["metrics"]["data/evaluation/metrics.json"] == outcomes[name].metrics, name
    assert outcomes["orig-lrn-leaky"].metrics != outcomes["resnet-probe"].metrics  # two different models


def test_exp_apply_restores_an_experiments_model(
    experiments: tuple[Path, dict[str, dict[str, Any]]],
) -> None:
    project, _ = experiments
    applied = run(["dvc", "exp", "apply", "orig-lrn-leaky"], project, timeout=300)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    config = json.loads((project / "data/model/config.json").read_text())
    assert config["architecture"]["norm"] == "lrn" and config["architecture"]["layout"] == "original"
