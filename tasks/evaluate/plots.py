"""Evaluation plots twice over: CSV data that `dvc plots show` renders, and matplotlib PNGs for the report."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on pipeline machines
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve, roc_curve

from tasks.common.atomic import atomic_path
from tasks.common.metrics import class_log_odds


def _write_csv(frame: pd.DataFrame, target: Path) -> None:
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, index=False)


def write_dvc_plots(
    folder: Path,
    *,
    classes: list[str],
    labels: np.ndarray,
    logits: np.ndarray,
    score: np.ndarray,
    is_abnormal: np.ndarray,
    reliability: list[dict[str, float]],
) -> None:
    """roc.csv / pr.csv (abnormal vs negative), confusion.csv (one row per test image), calibration.csv.

    roc.csv keeps every threshold's point (no collinear points dropped), so the reported operating
    point (1 - specificity, sensitivity) is one of its rows.
    """
    fpr, tpr, _ = roc_curve(is_abnormal, score, drop_intermediate=False)
    _write_csv(pd.DataFrame({"fpr": fpr, "tpr": tpr}), folder / "roc.csv")
    precision, recall, _ = precision_recall_curve(is_abnormal, score)
    _write_csv(pd.DataFrame({"recall": recall, "precision": precision}), folder / "pr.csv")
    names = np.asarray(classes)
    confusion = pd.DataFrame({"actual": names[labels], "predicted": names[logits.argmax(axis=1)]})
    _write_csv(confusion, folder / "confusion.csv")
    calibration = pd.DataFrame(reliability, columns=["confidence", "accuracy", "count"])
    _write_csv(calibration, folder / "calibration.csv")


def _save(figure: plt.Figure, target: Path) -> None:
    with atomic_path(target) as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)


def plot_roc(
    target: Path, classes: list[str], labels: np.ndarray, logits: np.ndarray, operating: dict
) -> None:
    """One-vs-rest ROC per class plus the abnormal-vs-negative curve with its operating point."""
    figure, axes = plt.subplots(figsize=(5.5, 5))
    for k, name in enumerate(classes):
        if 0 < (labels == k).sum() < len(labels):
            fpr, tpr, _ = roc_curve(labels == k, class_log_odds(logits, k))
            axes.plot(fpr, tpr, lw=1.2, label=f"{name} vs rest")
    fpr, tpr, _ = roc_curve(operating["is_abnormal"], operating["score"])
    axes.plot(fpr, tpr, "k", lw=2, label="abnormal vs negative")
    axes.plot(1 - operating["specificity"], operating["sensitivity"], "ro", label="operating point")
    axes.plot([0, 1], [0, 1], ":", color="grey")
    axes.set(xlabel="false positive rate (1 - specificity)", ylabel="sensitivity", title="ROC (test)")
    axes.legend(loc="lower right", fontsize=8)
    _save(figure, target)


def plot_pr(target: Path, classes: list[str], labels: np.ndarray, logits: np.ndarray) -> None:
    """One-vs-rest precision-recall curve per class."""
    figure, axes = plt.subplots(figsize=(5.5, 5))
    for k, name in enumerate(classes):
        if (labels == k).any():
            precision, recall, _ = precision_recall_curve(labels == k, class_log_odds(logits, k))
            axes.plot(recall, precision, lw=1.2, label=name)
    axes.set(xlabel="recall", ylabel="precision", title="Precision-recall (test)", ylim=(0, 1.02))
    axes.legend(loc="lower left", fontsize=8)
    _save(figure, target)


def plot_confusion(target: Path, classes: list[str], matrix: np.ndarray) -> None:
    """Counts with rows = true class and columns = predicted class."""
    figure, axes = plt.subplots(figsize=(1.2 * len(classes) + 3, 1.1 * len(classes) + 2.5))
    axes.imshow(matrix, cmap="Blues")
    for (row, col), count in np.ndenumerate(matrix):
        colour = "white" if count > matrix.max() / 2 else "black"
        axes.text(col, row, str(count), ha="center", va="center", color=colour)
    ticks = range(len(classes))
    axes.set_xticks(ticks, classes, rotation=30, ha="right")
    axes.set_yticks(ticks, classes)
    axes.set(xlabel="predicted", ylabel="true", title="Confusion matrix (test)")
    _save(figure, target)


def plot_calibration(target: Path, reliability: list[dict[str, float]]) -> None:
    """Reliability diagram: accuracy against mean confidence per bin; the diagonal is perfect."""
    figure, axes = plt.subplots(figsize=(5.5, 5))
    confidence = [b["confidence"] for b in reliability]
    accuracy = [b["accuracy"] for b in reliability]
    axes.plot([0, 1], [0, 1], ":", color="grey", label="perfectly calibrated")
    axes.plot(confidence, accuracy, "o-", label="model")
    axes.set(xlabel="mean confidence (top class)", ylabel="accuracy", title="Reliability (test)")
    axes.set(xlim=(0, 1), ylim=(0, 1.02))
    axes.legend(loc="upper left", fontsize=8)
    _save(figure, target)
