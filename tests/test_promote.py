"""Promotion gate: non-inferiority on a paired patient bootstrap, floors, the simple baseline, the
learning check, and the real stage sequence (including a deliberately broken run)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import tasks.evaluate.stage as evaluate
import tasks.promote.gate as gate
import tasks.promote.stage as promote
import tasks.train.stage as train
from models.registry import Registry
from tasks.common.params import parse_section
from tests.tiny_pipeline import constant_model, make_store, project_params, save_candidate, train_tiny


def test_compare_rejects_a_worse_candidate_and_accepts_an_equal_one(tmp_path: Path) -> None:
    settings = parse_section(project_params(tmp_path), "promote", gate.PromoteParams)
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 20)
    patients = np.arange(40) // 2
    good = np.stack([1 - labels * 0.8 - 0.1, labels * 0.8 + 0.1], axis=1)  # perfectly ranked
    noise = rng.uniform(size=40)
    bad = np.stack([1 - noise, noise], axis=1)  # random ranking
    worse = gate.compare(labels, patients, bad, good, settings, seed=0)
    assert worse["difference"] < 0 and not worse["non_inferior"]
    same = gate.compare(labels, patients, good, good, settings, seed=0)
    assert same["difference_ci95"] == [0.0, 0.0] and same["non_inferior"]


def test_floors(tmp_path: Path) -> None:
    params = project_params(tmp_path, promote__min_sensitivity=0.8)
    settings = parse_section(params, "promote", gate.PromoteParams)
    floors = gate.check_floors({"roc_auc": 0.9, "sensitivity": 0.7, "specificity": None}, settings)
    assert floors["roc_auc"]["met"] and not floors["sensitivity"]["met"] and not floors["specificity"]["met"]


def test_baseline_margin_capped_for_a_near_perfect_baseline(tmp_path: Path) -> None:
    params = project_params(tmp_path, promote__min_margin_over_baseline=0.02)
    settings = parse_section(params, "promote", gate.PromoteParams)
    assert gate.check_baseline({"roc_auc": 0.80, "baseline_roc_auc": 0.79}, settings)["met"] is False
    assert gate.check_baseline({"roc_auc": 0.81, "baseline_roc_auc": 0.79}, settings)["met"] is True
    # A baseline at 0.993 (the demo's classes differ in shape): 0.98 = 1 - margin is enough.
    capped = gate.check_baseline({"roc_auc": 0.985, "baseline_roc_auc": 0.993}, settings)
    assert capped["met"] and capped["required"] == pytest.approx(0.98)
    assert gate.check_baseline({"roc_auc": 0.9, "baseline_roc_auc": None}, settings)["met"] is False
    chance = {"roc_auc": 0.5, "baseline_roc_auc": 0.6}
    record = {"learned": False, "learning_warnings": ["test ROC-AUC 0.500 is near chance"]}
    reasons = gate.refusals({}, gate.check_baseline(chance, settings), record, require_learned=True)
    assert reasons[0] == "the model did not learn: test ROC-AUC 0.500 is near chance"
    assert "0.500 does not beat the simple baseline's 0.600" in reasons[1]
    assert (
        gate.refusals({}, gate.check_baseline(chance, settings), record, require_learned=False) == reasons[1:]
    )


def _evaluate_and_promote(params: dict, model: torch.nn.Module) -> dict:
    save_candidate(model, Path(params["paths"]["model"]))
    evaluate.main(params)
    promote.main(params)
    return json.loads((Path(params["paths"]["promotion"]) / "promotion.json").read_text())


@pytest.mark.slow
def test_worse_candidate_is_kept_out_better_is_promoted_rollback_restores(tmp_path: Path) -> None:
    # The tiny store's baseline is near perfect; this test is about the champion comparison.
    params = project_params(
        tmp_path, promote__non_inferiority_margin=0.05, promote__min_margin_over_baseline=-1
    )
    store = Path(params["paths"]["preprocessed"])
    make_store(store)
    registry = Registry(Path(params["paths"]["registry"]))

    useless = _evaluate_and_promote(params, constant_model())  # p = 1/3 everywhere: never a champion
    assert not useless["promoted"] and "the model did not learn" in useless["reasons"][0]

    first = _evaluate_and_promote(params, train_tiny(store, steps=15, seed=0))  # no champion yet
    assert first["promoted"] and first["version"] == 1 and first["comparison"] is None

    better = _evaluate_and_promote(params, train_tiny(store, steps=40, seed=0))
    assert better["promoted"] and better["version"] == 2
    assert better["comparison"]["candidate"] >= better["comparison"]["champion"]
    assert registry.aliases() == {"champion": 2, "previous": 1}

    worse = _evaluate_and_promote(params, constant_model(seed=1))
    assert not worse["promoted"] and worse["version"] is None
    assert worse["comparison"]["difference_ci95"][0] <= -0.05
    assert any("inferior to champion v2" in reason for reason in worse["reasons"])
    assert registry.aliases()["champion"] == 2 and len(registry.versions()) == 2

    again = _evaluate_and_promote(params, train_tiny(store, steps=40, seed=0))  # same seed: same weights
    assert not again["promoted"]
    assert "already champion" in again["reasons"][0]

    assert registry.rollback("test") == 1
    assert registry.load("champion").version == 1
    events = [entry["event"] for entry in registry.audit_log()]
    assert events == ["not_promoted", "promoted", "promoted", "not_promoted", "not_promoted", "rollback"]


def shuffle_labels(store: Path, seed: int) -> None:
    """Give every patient a random class: the images keep their class signal, the labels lose it."""
    index = pd.read_csv(store / "index.csv")
    classes = sorted(index["label"].unique())
    patients = index["patient_id"].unique()
    drawn = dict(
        zip(patients, np.random.default_rng(seed).permutation(len(patients)) % len(classes), strict=True)
    )
    index["label_index"] = index["patient_id"].map(drawn)
    index["label"] = [classes[k] for k in index["label_index"]]
    index.to_csv(store / "index.csv", index=False)


@pytest.mark.slow
def test_a_run_on_shuffled_labels_is_flagged_and_not_promoted(tmp_path: Path) -> None:
    """The real train stage on labels that carry no signal; floors are 0, so only the new checks act."""
    params = project_params(tmp_path)
    params["train"].update(epochs=3, hidden_units=64, in_channels=1, augment=False, threads=1)
    store = Path(params["paths"]["preprocessed"])
    make_store(store, patients=48)
    shuffle_labels(store, seed=5)
    for stage in (train, evaluate, promote):
        stage.main(params)

    metrics = json.loads((Path(params["paths"]["evaluation"]) / "metrics.json").read_text())
    detail = json.loads((Path(params["paths"]["evaluation"]) / "metrics_detail.json").read_text())
    assert metrics["learned"] is False
    # Which check fires depends on whether the tiny net memorised the noise (train) or not (test AUC).
    chance = ("training loss did not fall below chance", "is near chance")
    assert any(flag in text for text in detail["learning_warnings"] for flag in chance)
    card = (Path(params["paths"]["evaluation"]) / "report" / "model_card.md").read_text()
    assert "WARNING: the model did not learn" in card
    decision = json.loads((Path(params["paths"]["promotion"]) / "promotion.json").read_text())
    assert not decision["promoted"] and decision["reasons"][0].startswith("the model did not learn")
    registry = Registry(Path(params["paths"]["registry"]))
    assert registry.versions() == [] and [e["event"] for e in registry.audit_log()] == ["not_promoted"]
