"""The study's pictures: a forest plot of the paired differences and every variant's ROC curve on one
plot (abnormal vs the negative class, as the evaluation report draws it), as PNGs and as DVC plot data."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on pipeline machines
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from flows.study.collect import StudyData
from flows.study.compare import Comparison
from tasks.common.atomic import atomic_path
from tasks.common.operating import abnormal_log_odds


def roc_points(data: StudyData, variant: str) -> pd.DataFrame:
    """fpr/tpr of the variant's abnormal log-odds, every seed's test predictions pooled (each image
    once per seed), so the curve is the variant's, not one seed's."""
    scores = np.concatenate([abnormal_log_odds(run, data.negative_index) for run in data.logits[variant]])
    truth = np.tile(data.labels != data.negative_index, len(data.logits[variant]))
    fpr, tpr, _ = roc_curve(truth, scores)
    return pd.DataFrame({"fpr": fpr, "tpr": tpr})


def differences_frame(comparison: Comparison) -> pd.DataFrame:
    """One row per compared variant: the difference, its corrected interval and the verdict."""
    rows = [
        {
            "variant": row.variant,
            "difference": row.difference.estimate,
            "low": row.difference.low,
            "high": row.difference.high,
            "verdict": row.difference.verdict,
        }
        for row in comparison.rows
        if row.difference is not None
    ]
    return pd.DataFrame(rows, columns=["variant", "difference", "low", "high", "verdict"])


def plot_forest(path: Path, comparison: Comparison) -> None:
    """Paired differences to the reference with their corrected intervals; zero marked."""
    frame = differences_frame(comparison).iloc[::-1]  # first variant on top
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(frame) + 1.6))
    colours = frame["verdict"].map({"better": "tab:green", "worse": "tab:red"}).fillna("tab:gray")
    positions = np.arange(len(frame))
    ax.hlines(positions, frame["low"].astype(float), frame["high"].astype(float), colors=list(colours))
    ax.scatter(frame["difference"], positions, c=list(colours), zorder=3)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(positions, frame["variant"])
    ax.set_xlabel(
        f"test {comparison.metric}: variant - {comparison.reference} "
        f"({comparison.level:.2%} interval, Bonferroni)"
    )
    ax.set_title(
        f"Paired differences, {len(comparison.seeds)} seed(s), {comparison.n_test_patients} test patients"
    )
    fig.tight_layout()
    _save(fig, path)


def plot_rocs(path: Path, data: StudyData, variants: list[str]) -> None:
    """Every variant's ROC curve (seeds pooled) on one plot."""
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    for variant in variants:
        points = roc_points(data, variant)
        ax.plot(points["fpr"], points["tpr"], label=variant, linewidth=1.2)
    ax.plot([0, 1], [0, 1], color="gray", linestyle=":", linewidth=0.8)
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title("ROC, abnormal vs negative class (test, seeds pooled)")
    ax.legend(fontsize="small", loc="lower right")
    fig.tight_layout()
    _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
