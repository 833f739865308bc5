"""The warnings an evaluation must not keep quiet about: a network that did not learn, and data too thin
to support the numbers reported on it.

A network that learned nothing still yields a report full of plausible numbers (issue #11: test
ROC-AUC 0.46 behind a normal-looking report). Signals, each with its reason in words:
- the training record: the train side's own `learned` flag, or a final training loss still near the
  loss of a model that learned nothing (`evaluate.chance_loss_fraction` of it);
- validation or test ROC-AUC within `evaluate.chance_auc_margin` of 0.5;
- a test ROC-AUC no better than the simple baseline's on the same split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tasks.common.scoring import TensorStore
from tasks.evaluate.params import EvaluateParams
from tasks.evaluate.training import TrainingRecord


@dataclass(frozen=True)
class LearningCheck:
    """`learned` is False on a chance-level signal; `beats_baseline` compares with the simple baseline
    (None: unknown, when either test ROC-AUC is missing or NaN, e.g. a test split holding one class)."""

    learned: bool
    beats_baseline: bool | None
    reasons: list[str]


@dataclass(frozen=True)
class Findings:
    """Everything the report, the model card, the stage summary and Prefect must show prominently."""

    learning: LearningCheck
    data: list[str] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return self.learning.reasons + self.data


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def training_reasons(training: TrainingRecord, loss_fraction: float) -> list[str]:
    """Why the training record says the network did not fit its training split (empty: it did, or
    there is no record to judge)."""
    summary = training.summary
    if summary is not None:
        if summary.get("learned") is False:
            return [f"training did not learn: {summary.get('reason') or 'the train stage says so'}"]
        return []
    loss = training.final_loss
    if loss is not None and loss > loss_fraction * training.chance_loss:
        return [
            f"training loss did not fall below chance: final {loss:.3f} vs {training.chance_loss:.3f} for "
            "a model that learned nothing, so the network did not fit its training split"
        ]
    return []


def learning_check(
    test: dict[str, Any], validation: dict[str, Any], training: TrainingRecord, settings: EvaluateParams
) -> LearningCheck:
    """Judge the model from its test and validation ROC-AUC (each with the baseline's) and training."""
    reasons = training_reasons(training, settings.chance_loss_fraction)
    floor = 0.5 + settings.chance_auc_margin
    for split, values in (("validation", validation), ("test", test)):
        if _finite(values["roc_auc"]) and values["roc_auc"] < floor:
            reasons.append(f"{split} ROC-AUC {values['roc_auc']:.3f} is near chance (below {floor:.2f})")
    learned = not reasons
    model, baseline = test["roc_auc"], test["baseline_roc_auc"]
    # Unknown stays unknown: read as True it would hide a failed comparison (the promote gate refuses it).
    beats = bool(model > baseline or model >= 1.0) if _finite(model) and _finite(baseline) else None
    if beats is None:
        model_text, baseline_text = (f"{v:.3f}" if _finite(v) else "unknown" for v in (model, baseline))
        reasons.append(
            f"whether the model beats the simple baseline is unknown: test ROC-AUC {model_text} vs the "
            f"baseline's {baseline_text} (an AUC needs a negative and an abnormal image in the test split)"
        )
    elif not beats:
        reasons.append(
            f"test ROC-AUC {model:.3f} is no better than the simple baseline's {baseline:.3f} "
            "(logistic regression on intensity/texture features of the same images and splits)"
        )
    return LearningCheck(learned=learned, beats_baseline=beats, reasons=reasons)


def data_caveats(store: TensorStore, negative_index: int, min_per_side: int) -> list[str]:
    """Claims the data cannot support: splits by image rather than patient, and val/test splits with
    too few negative or abnormal images to choose a threshold on or to measure one."""
    caveats = []
    index = store.index
    # Preprocess records how many images no patient id named (classes.json); an older store does not,
    # and then one image per patient throughout is the tell.
    unnamed = store.splits.get("images_without_patient")
    if unnamed is None:
        unnamed = len(index) if len(index) > 1 and index["patient_id"].nunique() == len(index) else 0
    if unnamed:
        caveats.append(
            f"{unnamed} images had no patient id, so each counts as its own patient: for them the split "
            "is per image, a patient's other images may sit in train, and the test metrics may be optimistic"
        )
    uses = {"val": "the operating threshold chosen on it", "test": "the test metrics"}
    for split, use in uses.items():
        labels = index.loc[index["split"] == split, "label_index"].to_numpy(dtype=int)
        negatives = int(np.sum(labels == negative_index))
        abnormal = len(labels) - negatives
        if min(negatives, abnormal) < min_per_side:
            caveats.append(
                f"the {split} split holds {negatives} negative and {abnormal} abnormal images (fewer than "
                f"{min_per_side} on a side): {use} cannot be trusted"
            )
    return caveats
