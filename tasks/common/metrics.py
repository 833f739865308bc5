"""Classification metrics over arrays: pure functions, no files, so tests can check them by hand.

Multi-class sensitivity/specificity use one binary notion throughout radflow: "abnormal" is any class
other than the configured negative class, scored by `1 - p(negative)`. For two classes this is simply
the positive class's probability.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

ThresholdMethod = Literal["youden", "target_sensitivity"]
# Metrics computable from probabilities alone (no threshold): usable to compare two models.
RANKING_METRICS = ("roc_auc", "pr_auc", "accuracy", "balanced_accuracy")
HEADLINE_METRICS = (*RANKING_METRICS, "sensitivity", "specificity", "ece")


def abnormal_score(probs: np.ndarray, negative_index: int) -> np.ndarray:
    """Probability of "not the negative class": (N, K) -> (N,)."""
    return 1.0 - probs[:, negative_index]


def choose_threshold(
    is_abnormal: np.ndarray, score: np.ndarray, method: ThresholdMethod, target_sensitivity: float
) -> float:
    """Operating threshold on the abnormal score; call it on the validation split only.

    Youden maximises sensitivity + specificity - 1; target_sensitivity takes the highest threshold whose
    sensitivity reaches the target (the most specific such point). A case is abnormal when score >= it.
    """
    if is_abnormal.all() or not is_abnormal.any():
        return 0.5  # one class only: no curve to choose on, fall back to the natural midpoint
    fpr, tpr, thresholds = roc_curve(is_abnormal, score)
    if method == "youden":
        best = int(np.argmax(tpr - fpr))
    else:
        best = int(np.flatnonzero(tpr >= target_sensitivity)[0])
    return float(min(thresholds[best], 1.0))  # roc_curve's first threshold is +inf


def _safe(metric: Callable[[], float]) -> float:
    """A metric that is undefined on this sample (e.g. one class only) becomes NaN, not an exception."""
    try:
        with warnings.catch_warnings():  # bootstrap samples and small subgroups may lack a class
            warnings.simplefilter("ignore", UserWarning)
            value = float(metric())
    except ValueError:
        return math.nan
    return value


def roc_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """ROC-AUC; one-vs-rest macro average when there are more than two classes."""
    if len(np.unique(labels)) < 2:
        return math.nan
    if probs.shape[1] == 2:
        return _safe(lambda: roc_auc_score(labels, probs[:, 1]))
    present = np.unique(labels)
    if len(present) < probs.shape[1]:  # OvR macro over the classes present in this sample
        onehot = np.eye(probs.shape[1])[labels][:, present]
        return _safe(lambda: roc_auc_score(onehot, probs[:, present], average="macro"))
    return _safe(lambda: roc_auc_score(labels, probs, multi_class="ovr", average="macro"))


def pr_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """Average precision (area under the PR curve), one-vs-rest macro over the classes present.

    Macro for two classes too, so the value does not depend on which class sorts second.
    """
    present = np.unique(labels)
    onehot = np.eye(probs.shape[1])[labels][:, present]
    return _safe(lambda: average_precision_score(onehot, probs[:, present], average="macro"))


def reliability_bins(labels: np.ndarray, probs: np.ndarray, n_bins: int) -> list[dict[str, float]]:
    """Top-label reliability curve: per confidence bin, mean confidence, accuracy and count."""
    confidence = probs.max(axis=1)  # (N,)
    correct = (probs.argmax(axis=1) == labels).astype(float)
    # Bin i holds confidences in ((i)/n, (i+1)/n]; 0 goes into the first bin.
    which = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    bins = []
    for i in range(n_bins):
        members = which == i
        if members.any():
            bins.append(
                {
                    "bin_low": i / n_bins,
                    "bin_high": (i + 1) / n_bins,
                    "confidence": float(confidence[members].mean()),
                    "accuracy": float(correct[members].mean()),
                    "count": int(members.sum()),
                }
            )
    return bins


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, n_bins: int) -> float:
    """ECE: count-weighted mean |accuracy - confidence| over the reliability bins."""
    bins = reliability_bins(labels, probs, n_bins)
    total = sum(b["count"] for b in bins)
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins) / total)


def headline_metrics(
    labels: np.ndarray, probs: np.ndarray, *, negative_index: int, threshold: float, n_bins: int
) -> dict[str, float]:
    """The headline numbers for one set of (N,) labels and (N, K) probabilities."""
    predicted = probs.argmax(axis=1)
    is_abnormal = labels != negative_index
    flagged = abnormal_score(probs, negative_index) >= threshold
    positives, negatives = is_abnormal.sum(), (~is_abnormal).sum()
    return {
        "roc_auc": roc_auc(labels, probs),
        "pr_auc": pr_auc(labels, probs),
        "accuracy": float(accuracy_score(labels, predicted)),
        "balanced_accuracy": _balanced_accuracy(labels, predicted),
        "sensitivity": float((flagged & is_abnormal).sum() / positives) if positives else math.nan,
        "specificity": float((~flagged & ~is_abnormal).sum() / negatives) if negatives else math.nan,
        "ece": expected_calibration_error(labels, probs, n_bins),
    }


def _balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Mean recall over the classes present (sklearn warns, not fails, on absent predicted classes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(balanced_accuracy_score(labels, predicted))


def per_class_metrics(labels: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> dict[str, dict]:
    """Precision, recall, F1 and support for every class (argmax predictions)."""
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, probs.argmax(axis=1), labels=list(range(len(classes))), zero_division=0
    )
    return {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(classes)
    }


def confusion(labels: np.ndarray, probs: np.ndarray, n_classes: int) -> np.ndarray:
    """(K, K) counts, rows = true class, columns = predicted class."""
    return confusion_matrix(labels, probs.argmax(axis=1), labels=list(range(n_classes)))


def patient_bootstrap(
    patients: np.ndarray,
    statistic: Callable[[np.ndarray], dict[str, float]],
    *,
    samples: int,
    seed: int,
) -> dict[str, list[float | None]]:
    """95% percentile intervals of `statistic(row_indices)` under resampling of whole patients.

    Images of one patient are correlated, so patients (not images) are the unit drawn with replacement.
    Samples where a metric is undefined (NaN) are left out of that metric's interval.
    """
    rng = np.random.default_rng(seed)
    unique = np.unique(patients)
    rows_of = [np.flatnonzero(patients == p) for p in unique]
    draws: dict[str, list[float]] = {}
    for _ in range(samples):
        chosen = rng.integers(0, len(unique), size=len(unique))
        rows = np.concatenate([rows_of[i] for i in chosen])
        for name, value in statistic(rows).items():
            draws.setdefault(name, []).append(value)
    intervals: dict[str, list[float | None]] = {}
    for name, values in draws.items():
        finite = np.asarray(values)[np.isfinite(values)]
        if finite.size == 0:
            intervals[name] = [None, None]
        else:
            intervals[name] = [float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))]
    return intervals


def metric_by_name(name: str, labels: np.ndarray, probs: np.ndarray) -> float:
    """One threshold-free metric by name (used by the promotion gate's paired comparison)."""
    predicted = probs.argmax(axis=1)
    functions: dict[str, Callable[[], float]] = {
        "roc_auc": lambda: roc_auc(labels, probs),
        "pr_auc": lambda: pr_auc(labels, probs),
        "accuracy": lambda: float(accuracy_score(labels, predicted)),
        "balanced_accuracy": lambda: _balanced_accuracy(labels, predicted),
    }
    return functions[name]()
