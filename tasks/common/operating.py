"""The operating point: how radflow decides "abnormal" versus the negative class, defined once for
evaluate (which chooses the threshold), promote (which registers it) and predict (which applies it).

The score is the abnormal log-odds, log(sum of p(abnormal classes) / p(negative)), computed in float64
from the logits as logsumexp(abnormal logits) - negative logit. It ranks images exactly as
1 - p(negative) does, but keeps full precision where the softmax saturates: in float64, 1 - p(negative)
is exactly 0 for every logit gap above ~37 (float32: ~17), which merged distinct images into one score
and put the reported sensitivity/specificity off the ROC curve drawn from the same scores.
An image is abnormal when its score >= the threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import log_softmax, logsumexp

from tasks.common.classes import resolve_negative_class
from tasks.common.errors import RadflowError

SCORE = "abnormal_log_odds"  # the name the threshold's unit is recorded under


def log_probabilities(logits: np.ndarray) -> np.ndarray:
    """(N, K) logits -> (N, K) float64 log-softmax (exact where probabilities round to 0 or 1)."""
    return log_softmax(np.asarray(logits, dtype=np.float64), axis=1)


def abnormal_log_odds(scores: np.ndarray, negative_index: int) -> np.ndarray:
    """(N, K) logits or log-probabilities (the normaliser cancels) -> (N,) float64 abnormal log-odds."""
    scores = np.asarray(scores, dtype=np.float64)
    abnormal = np.delete(scores, negative_index, axis=1)  # (N, K - 1)
    return logsumexp(abnormal, axis=1) - scores[:, negative_index]


@dataclass(frozen=True)
class OperatingPoint:
    """The registered decision rule: abnormal when abnormal_log_odds >= threshold."""

    classes: list[str]
    negative_class: str
    threshold: float  # in abnormal log-odds (SCORE); 0 means p(abnormal) = p(negative) = 0.5

    @property
    def negative_index(self) -> int:
        return self.classes.index(self.negative_class)

    def to_dict(self) -> dict[str, Any]:
        """The form stored in the evaluation record (metrics_detail.json and the registry)."""
        return {
            "score": SCORE,
            "negative_class": self.negative_class,
            "threshold": self.threshold,
            "threshold_probability": probability_of(self.threshold),
        }

    def decide(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N, K) logits -> (N,) abnormal log-odds, (N,) abnormal flags and (N,) decided class indices:
        the negative class when not flagged, else the most probable abnormal class."""
        score = abnormal_log_odds(logits, self.negative_index)
        flagged = score >= self.threshold
        abnormal_logits = np.array(logits, dtype=np.float64)
        abnormal_logits[:, self.negative_index] = -np.inf
        decided = np.where(flagged, abnormal_logits.argmax(axis=1), self.negative_index)
        return score, flagged, decided


def probability_of(log_odds: float) -> float:
    """The threshold as p(abnormal) for reading; rounds to 0/1 far out, which is why it is not the unit."""
    return float(1.0 / (1.0 + math.exp(-log_odds))) if log_odds > -700 else 0.0


def from_record(record: dict[str, Any], classes: list[str], negative_setting: str) -> OperatingPoint | None:
    """The operating point an evaluation record (a registry version's metrics) holds, or None.

    Records written before the log-odds score stored `threshold` on 1 - p(negative) and no class: that
    threshold maps exactly onto log-odds (the score is monotone in it), and the class is resolved from
    the `evaluate.negative_class` setting as those evaluations did.
    """
    stored = record.get("operating_point")
    if isinstance(stored, dict) and stored.get("score") == SCORE:
        if stored.get("negative_class") not in classes or stored.get("threshold") is None:
            raise RadflowError(f"the registered operating point {stored} does not fit classes {classes}")
        return OperatingPoint(list(classes), stored["negative_class"], float(stored["threshold"]))
    old = record.get("threshold")
    if not isinstance(old, int | float) or isinstance(old, bool):
        return None
    negative = resolve_negative_class(negative_setting, list(classes))
    with np.errstate(divide="ignore"):  # 0 and 1 map to -inf and +inf, which is what they meant
        log_odds = float(np.log(old) - np.log1p(-old)) if 0.0 <= old <= 1.0 else math.nan
    if math.isnan(log_odds):
        raise RadflowError(f"the registered threshold {old} is not a probability; re-evaluate the model")
    return OperatingPoint(list(classes), negative, log_odds)
