"""Evaluation logic over arrays: the operating threshold chosen on validation, every test metric, the
simple baseline beside the model, and the warnings a reader must not miss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tasks.common.classes import SUBGROUPS
from tasks.common.jsonsafe import finite_or_none
from tasks.common.metrics import (
    HEADLINE_METRICS,
    choose_threshold,
    confusion,
    headline_metrics,
    patient_bootstrap,
    per_class_metrics,
    reliability_bins,
    roc_auc,
)
from tasks.common.operating import OperatingPoint, abnormal_log_odds
from tasks.common.scoring import TensorStore
from tasks.evaluate.checks import Findings, data_caveats, learning_check
from tasks.evaluate.params import EvaluateParams
from tasks.evaluate.training import TrainingRecord


@dataclass(frozen=True)
class Scores:
    """(N, K) float64 logits of one model on the val and test splits (store order)."""

    val: np.ndarray
    test: np.ndarray


@dataclass
class Evaluation:
    """Everything the writers need: test rows with their logits, the metrics and the findings."""

    classes: list[str]
    test: pd.DataFrame  # index.csv rows of the test split, store order
    logits: np.ndarray  # (N_test, K) float64
    labels: np.ndarray  # (N_test,) label_index
    operating: OperatingPoint
    metrics: dict[str, Any]  # the whole record: metrics.json's headline plus metrics_detail.json
    findings: Findings
    reliability: list[dict[str, float]]
    confusion: np.ndarray  # (K, K) rows = true, columns = predicted

    @property
    def negative_index(self) -> int:
        return self.operating.negative_index


def evaluate_scores(
    store: TensorStore,
    model: Scores,
    baseline: Scores,
    *,
    negative_class: str,
    training: TrainingRecord,
    settings: EvaluateParams,
    seed: int,
) -> Evaluation:
    """All metrics from validation and test logits; the threshold never sees a test label.

    The baseline's test ROC-AUC is computed inside the same patient resamples as the model's, so both
    intervals come from the same draws.
    """
    neg = store.classes.index(negative_class)
    val, test = store.split("val"), store.split("test")
    val_labels = val["label_index"].to_numpy(dtype=int)
    val_scores = abnormal_log_odds(model.val, neg)  # (N_val,)
    threshold = choose_threshold(
        val_labels != neg, val_scores, settings.threshold_method, settings.target_sensitivity
    )
    labels = test["label_index"].to_numpy(dtype=int)

    def headline(rows: np.ndarray) -> dict[str, float]:
        return headline_metrics(
            labels[rows], model.test[rows], negative_index=neg, threshold=threshold,
            n_bins=settings.calibration_bins,
        )  # fmt: skip

    def with_baseline(rows: np.ndarray) -> dict[str, float]:
        return {**headline(rows), "baseline_roc_auc": roc_auc(labels[rows], baseline.test[rows])}

    operating = OperatingPoint(list(store.classes), negative_class, threshold)
    metrics: dict[str, Any] = with_baseline(np.arange(len(labels)))
    ci = patient_bootstrap(
        test["patient_id"].to_numpy(), with_baseline, samples=settings.bootstrap_samples, seed=seed
    )
    validation = {
        "roc_auc": roc_auc(val_labels, model.val),
        "baseline_roc_auc": roc_auc(val_labels, baseline.val),
        "n_images": len(val),
        "n_patients": int(val["patient_id"].nunique()),
        # what the monitor compares arrivals' predictions with (prediction drift): every percentile of
        # the abnormal log-odds, and the share flagged at the threshold
        "abnormal_log_odds_quantiles": np.quantile(val_scores, np.linspace(0, 1, 101)).tolist(),
        "flagged_share": float((val_scores >= threshold).mean()),
    }
    findings = Findings(
        learning=learning_check(metrics, validation, training, settings),
        data=data_caveats(store, neg, settings.min_images_per_side),
    )
    metrics |= {
        "roc_auc_ci_low": ci["roc_auc"][0],
        "roc_auc_ci_high": ci["roc_auc"][1],
        "threshold": threshold,
        "learned": findings.learning.learned,
        "beats_baseline": findings.learning.beats_baseline,
        "n_test_images": len(labels),
        "n_test_patients": int(test["patient_id"].nunique()),
        "ci": ci,
        "operating_point": operating.to_dict() | {"method": settings.threshold_method},
        "validation": validation,
        "training": training.to_dict(),
        "learning_warnings": findings.learning.reasons,
        "data_warnings": findings.data,
        "per_class": per_class_metrics(labels, model.test, store.classes),
        "subgroups": subgroup_metrics(test, settings.subgroup_min_images, headline),
    }
    return Evaluation(
        classes=store.classes,
        test=test,
        logits=model.test,
        labels=labels,
        operating=operating,
        metrics=finite_or_none(metrics),
        findings=findings,
        reliability=reliability_bins(labels, model.test, settings.calibration_bins),
        confusion=confusion(labels, model.test, len(store.classes)),
    )


def subgroup_metrics(test: pd.DataFrame, min_images: int, headline: Any) -> dict[str, dict[str, dict]]:
    """Headline metrics per value of each subgroup column present; small groups get their count only."""
    result: dict[str, dict[str, dict]] = {}
    for column in SUBGROUPS:
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
