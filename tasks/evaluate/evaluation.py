"""Evaluation logic over arrays: the operating threshold chosen on validation, every test metric."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tasks.common.errors import RadflowError
from tasks.common.jsonsafe import finite_or_none
from tasks.common.metrics import (
    HEADLINE_METRICS,
    ThresholdMethod,
    abnormal_score,
    choose_threshold,
    confusion,
    headline_metrics,
    patient_bootstrap,
    per_class_metrics,
    reliability_bins,
)
from tasks.common.scoring import TensorStore

SUBGROUP_COLUMNS = ("modality", "view", "manufacturer", "sex", "age_band")


@dataclass(frozen=True)
class EvaluateParams:
    """params.yaml `evaluate` section (see the comments there)."""

    negative_class: str
    threshold_method: ThresholdMethod
    target_sensitivity: float
    bootstrap_samples: int
    calibration_bins: int
    subgroup_min_images: int
    gradcam_per_kind: int
    batch_size: int


@dataclass
class Evaluation:
    """Everything the writers need: test rows with their probabilities, and the computed metrics."""

    classes: list[str]
    test: pd.DataFrame  # index.csv rows of the test split, store order
    probs: np.ndarray  # (N_test, K) softmax probabilities
    labels: np.ndarray  # (N_test,) label_index
    negative_index: int
    threshold: float
    metrics: dict[str, Any]
    reliability: list[dict[str, float]]
    confusion: np.ndarray  # (K, K) rows = true, columns = predicted


def negative_index(classes: list[str], negative_class: str) -> int:
    """Position of the configured negative ("normal") class; its absence is a configuration error."""
    if negative_class not in classes:
        raise RadflowError(
            f"evaluate.negative_class {negative_class!r} is not a class; valid choices: {classes}"
        )
    return classes.index(negative_class)


def evaluate_probabilities(
    store: TensorStore,
    val_probs: np.ndarray,
    test_probs: np.ndarray,
    settings: EvaluateParams,
    seed: int,
) -> Evaluation:
    """All metrics from validation and test probabilities; the threshold never sees a test label."""
    neg = negative_index(store.classes, settings.negative_class)
    val = store.split("val")
    test = store.split("test")
    val_labels = val["label_index"].to_numpy(dtype=int)
    threshold = choose_threshold(
        val_labels != neg,
        abnormal_score(val_probs, neg),
        settings.threshold_method,
        settings.target_sensitivity,
    )
    labels = test["label_index"].to_numpy(dtype=int)

    def headline(rows: np.ndarray) -> dict[str, float]:
        return headline_metrics(
            labels[rows],
            test_probs[rows],
            negative_index=neg,
            threshold=threshold,
            n_bins=settings.calibration_bins,
        )

    everything = np.arange(len(labels))
    metrics: dict[str, Any] = {**headline(everything), "threshold": threshold}
    metrics["n_test_images"] = len(labels)
    metrics["n_test_patients"] = int(test["patient_id"].nunique())
    metrics["ci"] = patient_bootstrap(
        test["patient_id"].to_numpy(), headline, samples=settings.bootstrap_samples, seed=seed
    )
    metrics["per_class"] = per_class_metrics(labels, test_probs, store.classes)
    metrics["subgroups"] = subgroup_metrics(test, settings.subgroup_min_images, headline)
    return Evaluation(
        classes=store.classes,
        test=test,
        probs=test_probs,
        labels=labels,
        negative_index=neg,
        threshold=threshold,
        metrics=finite_or_none(metrics),
        reliability=reliability_bins(labels, test_probs, settings.calibration_bins),
        confusion=confusion(labels, test_probs, len(store.classes)),
    )


def subgroup_metrics(test: pd.DataFrame, min_images: int, headline: Any) -> dict[str, dict[str, dict]]:
    """Headline metrics per value of each subgroup column present; small groups get their count only."""
    result: dict[str, dict[str, dict]] = {}
    for column in SUBGROUP_COLUMNS:
        if column not in test.columns:
            continue
        values = test[column].astype(str).to_numpy()
        groups = sorted(set(values) - {""})
        if not groups:
            continue
        result[column] = {}
        for group in groups:
            rows = np.flatnonzero(values == group)
            entry: dict[str, Any] = {"n": len(rows)}
            if len(rows) >= min_images:
                entry.update(
                    {name: value for name, value in headline(rows).items() if name in HEADLINE_METRICS}
                )
            result[column][group] = entry
    return result
