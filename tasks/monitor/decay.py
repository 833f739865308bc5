"""Temporal validation: how the champion does on arrivals that were labelled after they were classified.

Per arrival month (and per manufacturer over the whole window), the ROC-AUC of the logged abnormal
log-odds against the labels, with a 95% interval from resampling whole patients (their images are
correlated), and sensitivity/specificity at the logged decision. A month whose interval lies wholly
below the champion's registered test ROC-AUC minus a margin is decay a person should look at.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.common.errors import RadflowError
from tasks.common.metrics import binary_auc, patient_bootstrap

KEYS = ("image_id", "study_id")  # a labels CSV is keyed by one of the pseudonymised ids the log holds


def read_labels(path: Path) -> pd.DataFrame:
    """A labels CSV: `label` and one key column (image_id or study_id, as the prediction log has them)."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as error:
        raise RadflowError(f"labels {path}: cannot read it as CSV ({error})") from None
    keys = [key for key in KEYS if key in table.columns]
    if "label" not in table.columns or len(keys) != 1:
        raise RadflowError(
            f"labels {path}: columns {list(table.columns)}; valid: label and one of {list(KEYS)}"
        )
    return table[[keys[0], "label"]]


def join_labels(arrivals: pd.DataFrame, labels: pd.DataFrame, negative_class: str) -> pd.DataFrame:
    """The classified arrivals that have a label, with `positive` (label is not the negative class)."""
    key = labels.columns[0]
    classified = arrivals[arrivals["abnormal_log_odds"].notna()]
    joined = classified.merge(labels.drop_duplicates(key, keep="last"), on=key, how="inner")
    return joined.assign(positive=joined["label"] != negative_class)


def performance(frame: pd.DataFrame, *, min_labelled: int, samples: int, seed: int) -> dict[str, Any]:
    """Counts, and where there are enough labelled arrivals of both kinds, ROC-AUC with its 95% interval
    and sensitivity/specificity at the logged decision."""
    positive = frame["positive"].to_numpy(dtype=bool)
    counts = {"labelled": len(frame), "positives": int(positive.sum())}
    if len(frame) < min_labelled or positive.all() or not positive.any():
        return counts
    score = frame["abnormal_log_odds"].to_numpy(dtype=np.float64)
    flagged = frame["abnormal"].to_numpy(dtype=bool)

    def auc(rows: np.ndarray) -> dict[str, float]:
        return {"roc_auc": binary_auc(positive[rows], score[rows])}

    low, high = patient_bootstrap(frame["patient_id"].to_numpy(), auc, samples=samples, seed=seed)["roc_auc"]
    return counts | {
        "roc_auc": auc(np.arange(len(frame)))["roc_auc"],
        "roc_auc_ci_low": math.nan if low is None else low,
        "roc_auc_ci_high": math.nan if high is None else high,
        "sensitivity": float(flagged[positive].mean()),
        "specificity": float(1.0 - flagged[~positive].mean()),
    }


def temporal_validation(
    labelled: pd.DataFrame, *, min_labelled: int, samples: int, seed: int
) -> dict[str, dict[str, dict[str, Any]]]:
    """{"month": {YYYY-MM: performance}, "manufacturer": {name: performance}} over `labelled` arrivals
    (join_labels' rows, with a `month` column)."""
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for column in ("month", "manufacturer"):
        groups = labelled.groupby(labelled[column].replace("", "unknown"), sort=True)
        result[column] = {
            str(name): performance(group, min_labelled=min_labelled, samples=samples, seed=seed)
            for name, group in groups
        }
    return result


def decayed(
    performance_by_month: dict[str, dict[str, Any]], reference_auc: float, margin: float
) -> list[str]:
    """The months whose ROC-AUC interval lies wholly below the reference ROC-AUC minus `margin`."""
    floor = reference_auc - margin
    return [
        month
        for month, figures in performance_by_month.items()
        if figures.get("roc_auc_ci_high") is not None and figures["roc_auc_ci_high"] < floor
    ]
