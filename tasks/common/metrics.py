"""Classification metrics over arrays: pure functions, no files, so tests can check them by hand.

Every function takes the network's (N, K) logits (float64), not probabilities: ranking metrics use
log-odds, which keep distinct images distinct where softmax probabilities round to exactly 0 or 1.
Multi-class sensitivity/specificity use one binary notion throughout radflow ("abnormal" = any class
other than the negative class, scored by its log-odds; see tasks.common.operating).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_curve,
)

from tasks.common.operating import abnormal_log_odds, log_probabilities

ThresholdMethod = Literal["youden", "target_sensitivity"]
# Metrics computable from scores alone (no threshold): usable to compare two models.
RANKING_METRICS = ("roc_auc", "pr_auc", "accuracy", "balanced_accuracy")
HEADLINE_METRICS = (*RANKING_METRICS, "sensitivity", "specificity", "ece")
ONE_CLASS_THRESHOLD = 0.0  # log-odds 0 = p(abnormal) 0.5: the natural cut when there is no curve to choose on


def choose_threshold(
    is_abnormal: np.ndarray, score: np.ndarray, method: ThresholdMethod, target_sensitivity: float
) -> float:
    """Operating threshold on the abnormal log-odds; call it on the validation split only.

    Youden maximises sensitivity + specificity - 1; target_sensitivity takes the highest threshold whose
    sensitivity reaches the target (the most specific such point). A case is abnormal when score >= it.
    The threshold is always one of the scores (a vertex of the ROC curve), or just above the highest
    score when flagging nothing is best.
    """
    if is_abnormal.all() or not is_abnormal.any():
        return ONE_CLASS_THRESHOLD
    fpr, tpr, thresholds = roc_curve(is_abnormal, score, drop_intermediate=False)
    if method == "youden":
        best = int(np.argmax(tpr - fpr))
    else:
        best = int(np.flatnonzero(tpr >= target_sensitivity)[0])
    if not math.isfinite(thresholds[best]):  # roc_curve's first point (flag nothing) sits at +inf
        return float(np.nextafter(score.max(), np.inf))
    return float(thresholds[best])


def _safe(metric: Callable[[], float]) -> float:
    """A metric that is undefined on this sample (e.g. one class only) becomes NaN, not an exception."""
    try:
        with warnings.catch_warnings():  # bootstrap samples and small subgroups may lack a class
            warnings.simplefilter("ignore", UserWarning)
            value = float(metric())
    except ValueError:
        return math.nan
    return value


def class_log_odds(logits: np.ndarray, k: int) -> np.ndarray:
    """(N,) log(p_k / (1 - p_k)): the one-vs-rest score of class k at full precision."""
    return -abnormal_log_odds(logits, k)


def binary_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC-AUC of (N,) scores for (N,) booleans by the Mann-Whitney rank identity: the value sklearn's
    roc_auc_score gives (ties count half), ~30x faster, which the 1000-resample bootstraps need."""
    n_positive = int(positive.sum())
    n_negative = len(positive) - n_positive
    if n_positive == 0 or n_negative == 0:
        return math.nan
    ranks = rankdata(score)  # average ranks for ties
    return float((ranks[positive].sum() - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative))


def roc_auc(labels: np.ndarray, logits: np.ndarray) -> float:
    """ROC-AUC; one-vs-rest macro average over the classes present when there are more than two.

    For two classes both one-vs-rest curves are the same curve, so this is the plain binary AUC.
    """
    present = np.unique(labels)
    if len(present) < 2:
        return math.nan
    return float(np.mean([binary_auc(labels == k, class_log_odds(logits, k)) for k in present]))


def pr_auc(labels: np.ndarray, logits: np.ndarray) -> float:
    """Average precision (area under the PR curve), one-vs-rest macro over the classes present.

    Macro for two classes too, so the value does not depend on which class sorts second.
    """
    present = np.unique(labels)
    return _safe(
        lambda: np.mean([average_precision_score(labels == k, class_log_odds(logits, k)) for k in present])
    )


def reliability_bins(labels: np.ndarray, logits: np.ndarray, n_bins: int) -> list[dict[str, float]]:
    """Top-label reliability curve: per confidence bin, mean confidence, accuracy and count."""
    confidence = np.exp(log_probabilities(logits).max(axis=1))  # (N,) top-class probability
    correct = (logits.argmax(axis=1) == labels).astype(float)
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


def expected_calibration_error(labels: np.ndarray, logits: np.ndarray, n_bins: int) -> float:
    """ECE: count-weighted mean |accuracy - confidence| over the reliability bins."""
    bins = reliability_bins(labels, logits, n_bins)
    total = sum(b["count"] for b in bins)
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins) / total)


def headline_metrics(
    labels: np.ndarray, logits: np.ndarray, *, negative_index: int, threshold: float, n_bins: int
) -> dict[str, float]:
    """The headline numbers for one set of (N,) labels and (N, K) logits.

    Sensitivity and specificity flag `abnormal_log_odds >= threshold`: the same score and rule as the
    abnormal-vs-negative ROC curve, so (1 - specificity, sensitivity) is always one of its points.
    """
    predicted = logits.argmax(axis=1)
    is_abnormal = labels != negative_index
    flagged = abnormal_log_odds(logits, negative_index) >= threshold
    positives, negatives = is_abnormal.sum(), (~is_abnormal).sum()
    return {
        "roc_auc": roc_auc(labels, logits),
        "pr_auc": pr_auc(labels, logits),
        "accuracy": float(accuracy_score(labels, predicted)),
        "balanced_accuracy": _balanced_accuracy(labels, predicted),
        "sensitivity": float((flagged & is_abnormal).sum() / positives) if positives else math.nan,
        "specificity": float((~flagged & ~is_abnormal).sum() / negatives) if negatives else math.nan,
        "ece": expected_calibration_error(labels, logits, n_bins),
    }


def _balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Mean recall over the classes present (sklearn warns, not fails, on absent predicted classes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(balanced_accuracy_score(labels, predicted))


def per_class_metrics(labels: np.ndarray, logits: np.ndarray, classes: Sequence[str]) -> dict[str, dict]:
    """Precision, recall, F1 and support for every class (argmax predictions)."""
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, logits.argmax(axis=1), labels=list(range(len(classes))), zero_division=0
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


def confusion(labels: np.ndarray, logits: np.ndarray, n_classes: int) -> np.ndarray:
    """(K, K) counts, rows = true class, columns = predicted class (argmax)."""
    return confusion_matrix(labels, logits.argmax(axis=1), labels=list(range(n_classes)))


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


def metric_by_name(name: str, labels: np.ndarray, logits: np.ndarray) -> float:
    """One threshold-free metric by name (used by the promotion gate's paired comparison)."""
    predicted = logits.argmax(axis=1)
    functions: dict[str, Callable[[], float]] = {
        "roc_auc": lambda: roc_auc(labels, logits),
        "pr_auc": lambda: pr_auc(labels, logits),
        "accuracy": lambda: float(accuracy_score(labels, predicted)),
        "balanced_accuracy": lambda: _balanced_accuracy(labels, predicted),
    }
    return functions[name]()
