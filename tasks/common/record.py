"""The evaluation record and its two files under `paths.evaluation`.

`metrics.json` is what `dvc metrics show` prints, so it holds only the headline, one readable row:
the test ROC-AUC with its 95% interval, sensitivity and specificity at the operating threshold, the
simple baseline's ROC-AUC and whether the network learned. `metrics_detail.json` holds the rest
(other metrics, every interval, the operating point, validation numbers, warnings, per-class and
subgroup tables). Promote registers the two merged, so a registry version carries the whole record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.json"
DETAIL_FILE = "metrics_detail.json"
HEADLINE_KEYS = (
    "roc_auc",
    "roc_auc_ci_low",
    "roc_auc_ci_high",
    "sensitivity",
    "specificity",
    "threshold",
    "baseline_roc_auc",
    "learned",
)


def split_record(record: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(headline for metrics.json, the rest for metrics_detail.json)."""
    headline = {key: record[key] for key in HEADLINE_KEYS if key in record}
    return headline, {key: value for key, value in record.items() if key not in HEADLINE_KEYS}


def read_object(path: Path) -> dict[str, Any]:
    """A JSON object from `path`, or {} when it is missing or unreadable (a run may have stopped early)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_record(folder: Path) -> dict[str, Any]:
    """Both files merged ({} for a file that is missing or unreadable: a run may have stopped early)."""
    return {**read_object(folder / DETAIL_FILE), **read_object(folder / METRICS_FILE)}
