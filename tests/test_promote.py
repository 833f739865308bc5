"""Promotion gate: non-inferiority on a paired patient bootstrap, floors, and the real stage sequence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import tasks.evaluate.stage as evaluate
import tasks.promote.gate as gate
import tasks.promote.stage as promote
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


def _evaluate_and_promote(params: dict, model: torch.nn.Module) -> dict:
    save_candidate(model, Path(params["paths"]["model"]))
    evaluate.main(params)
    promote.main(params)
    return json.loads((Path(params["paths"]["promotion"]) / "promotion.json").read_text())


@pytest.mark.slow
def test_worse_candidate_is_kept_out_better_is_promoted_rollback_restores(tmp_path: Path) -> None:
    params = project_params(tmp_path, promote__non_inferiority_margin=0.05)
    store = Path(params["paths"]["preprocessed"])
    make_store(store)
    registry = Registry(Path(params["paths"]["registry"]))

    first = _evaluate_and_promote(params, constant_model())  # no champion: floors (0 here) decide
    assert first["promoted"] and first["version"] == 1 and first["comparison"] is None

    better = _evaluate_and_promote(params, train_tiny(store, steps=40, seed=0))
    assert better["promoted"] and better["version"] == 2
    assert better["comparison"]["candidate"] > better["comparison"]["champion"]
    assert registry.aliases() == {"champion": 2, "previous": 1}

    worse = _evaluate_and_promote(params, constant_model(seed=1))
    assert not worse["promoted"] and worse["version"] is None
    assert worse["comparison"]["difference_ci95"][0] <= -0.05
    assert "inferior to champion v2" in worse["reasons"][0]
    assert registry.aliases()["champion"] == 2 and len(registry.versions()) == 2

    again = _evaluate_and_promote(params, train_tiny(store, steps=40, seed=0))  # same seed: same weights
    assert not again["promoted"]
    assert "already champion" in again["reasons"][0]

    assert registry.rollback("test") == 1
    assert registry.load("champion").version == 1
    events = [entry["event"] for entry in registry.audit_log()]
    assert events == ["promoted", "promoted", "not_promoted", "not_promoted", "rollback"]
