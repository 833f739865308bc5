"""Evaluate stage: score the candidate on the test split, with the operating threshold chosen on validation.

Reads `paths.model` and `paths.preprocessed`; writes `paths.evaluation` (metrics.json, plots/, report/).
"""

from __future__ import annotations

from typing import Any

import torch

import models
from tasks.common.params import parse_section
from tasks.common.paths import project_paths
from tasks.common.scoring import check_classes, predict_probabilities, read_store
from tasks.evaluate.evaluation import EvaluateParams, evaluate_probabilities
from tasks.evaluate.outputs import write_outputs


def main(params: dict[str, Any]) -> None:
    """Stage entry point: load the candidate and the store, score val and test, write every output."""
    settings = parse_section(params, "evaluate", EvaluateParams)
    paths = project_paths(params)
    seed = int(params["seed"])
    torch.manual_seed(seed)
    model, config = models.load_model(paths.model)
    store = read_store(paths.preprocessed)
    check_classes(config, store.classes)
    val_rows = store.split("val")["row"].to_numpy()
    test_rows = store.split("test")["row"].to_numpy()
    val_probs = predict_probabilities(model, config, store.images, val_rows, settings.batch_size)
    test_probs = predict_probabilities(model, config, store.images, test_rows, settings.batch_size)
    evaluation = evaluate_probabilities(store, val_probs, test_probs, settings, seed)
    write_outputs(
        paths.evaluation, evaluation, store=store, model=model, config=config, settings=settings, seed=seed
    )
