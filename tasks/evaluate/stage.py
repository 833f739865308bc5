"""Evaluate stage: score the candidate on the test split, with the operating threshold chosen on validation,
beside the simple baseline fitted on the same splits.

Reads `paths.model`, `paths.preprocessed` and (if present) DVCLive's `paths.train_live/metrics.json`;
writes `paths.evaluation` (metrics.json, metrics_detail.json, plots/, report/).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from rich.console import Console
from rich.markup import escape

import models
from models.inference import predict_logits
from tasks.common.classes import resolve_negative_class
from tasks.common.params import parse_section
from tasks.common.paths import project_paths
from tasks.common.scoring import check_classes, read_store
from tasks.evaluate.evaluation import Evaluation, Scores, evaluate_scores
from tasks.evaluate.outputs import write_outputs
from tasks.evaluate.params import EvaluateParams
from tasks.evaluate.reference import baseline_scores
from tasks.evaluate.report import headline_text
from tasks.evaluate.training import read_training_record

console = Console(stderr=True)


def summary(evaluation: Evaluation) -> str:
    """The stage's closing lines: the headline, then every warning, loudly."""
    lines = [f"evaluate: {escape(headline_text(evaluation.metrics))}"]
    if not evaluation.findings.learning.learned:
        lines.append("[bold red]evaluate: WARNING: the model did not learn[/]")
    lines += [f"[bold red]evaluate: WARNING:[/] {escape(text)}" for text in evaluation.findings.warnings]
    return "\n".join(lines)


def main(params: dict[str, Any]) -> None:
    """Stage entry point: load the candidate and the store, score val and test, write every output."""
    settings = parse_section(params, "evaluate", EvaluateParams)
    paths = project_paths(params)
    seed = int(params["seed"])
    torch.manual_seed(seed)
    model, config = models.load_model(paths.model)
    store = read_store(paths.preprocessed)
    check_classes(config, store.classes)
    negative = resolve_negative_class(settings.negative_class, store.classes)
    val_rows = store.split("val")["row"].to_numpy()
    test_rows = store.split("test")["row"].to_numpy()
    val_logits = predict_logits(model, config, store.images, val_rows, settings.batch_size)
    started = time.perf_counter()
    scores = Scores(
        val=val_logits, test=predict_logits(model, config, store.images, test_rows, settings.batch_size)
    )
    inference = {"inference_seconds_per_image": (time.perf_counter() - started) / max(len(test_rows), 1)}
    train_labels = store.split("train")["label_index"].to_numpy(dtype=int)
    training = read_training_record(config, paths.train_live, train_labels, len(store.classes))
    evaluation = evaluate_scores(
        store,
        scores,
        baseline_scores(store, settings, seed),
        negative_class=negative,
        training=training,
        settings=settings,
        seed=seed,
    )
    evaluation.metrics["cost"] = inference  # metrics_detail.json: what scoring one test image took
    write_outputs(
        paths.evaluation, evaluation, store=store, model=model, config=config, settings=settings, seed=seed
    )
    console.print(summary(evaluation), highlight=False, soft_wrap=True)
