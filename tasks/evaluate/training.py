"""What the train stage recorded about how training went, read for the "did it learn?" check.

Newer models carry a `training_summary` in config.json (first and final training loss, ln K, best
validation AUC, a `learned` flag and its reason). Older ones do not; for them the final training loss
comes from DVCLive's `paths.train_live/metrics.json` and is compared with the loss of a model that
predicts only chance. Neither is required: a model from elsewhere simply has no training record.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DVCLIVE_METRICS = "metrics.json"
BALANCED_LOSSES = ("weighted_loss", "sampler")  # class_balance modes whose chance-level loss is ln K


@dataclass(frozen=True)
class TrainingRecord:
    """The training side's own verdict (`summary`), else its final loss and the loss at chance."""

    summary: dict[str, Any] | None  # config.json's training_summary, as written by train
    final_loss: float | None  # DVCLive's last train_loss
    chance_loss: float  # cross-entropy of a model that learned nothing but the class balance

    def to_dict(self) -> dict[str, Any]:
        if self.summary is not None:
            return {"source": "training_summary", **self.summary}
        if self.final_loss is not None:
            return {"source": "dvclive", "final_loss": self.final_loss, "chance_loss": self.chance_loss}
        return {"source": None}


def chance_loss(config: dict[str, Any], train_labels: np.ndarray, num_classes: int) -> float:
    """The training loss of a network that learned nothing: ln K when the loss or the sampler balances
    the classes, else the entropy of the training split's class frequencies."""
    if (config.get("train") or {}).get("class_balance", "weighted_loss") in BALANCED_LOSSES:
        return math.log(num_classes)
    frequencies = np.bincount(train_labels, minlength=num_classes) / max(len(train_labels), 1)
    present = frequencies[frequencies > 0]
    return float(-(present * np.log(present)).sum())


def read_training_record(
    config: dict[str, Any], train_live: Path, train_labels: np.ndarray, num_classes: int
) -> TrainingRecord:
    """The model's training summary if it has one, else DVCLive's final training loss if present."""
    summary = config.get("training_summary")
    final_loss = None
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):  # no DVCLive record: no loss
        final_loss = float(json.loads((train_live / DVCLIVE_METRICS).read_text())["train_loss"])
    return TrainingRecord(
        summary=summary if isinstance(summary, dict) else None,
        final_loss=final_loss if final_loss is not None and math.isfinite(final_loss) else None,
        chance_loss=chance_loss(config, train_labels, num_classes),
    )
