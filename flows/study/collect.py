"""A finished study's runs as aligned arrays: every run's test logits on the same test images, in the
same order, or an error saying that the runs were not tested on the same patients."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from flows.study.settings import Run
from tasks.common.errors import RadflowError

PREDICTIONS = "report/test_predictions.csv"  # under paths.evaluation: one row per test image
DETAIL = "metrics_detail.json"  # under paths.evaluation
CONFIG = "config.json"  # under paths.model
Reader = Callable[[str, str], str]  # (experiment rev, path) -> the file's text


@dataclass(frozen=True)
class RunOutputs:
    """What one run left: its test predictions, evaluation detail and model config."""

    run: Run
    rev: str
    predictions: pd.DataFrame
    detail: dict[str, Any]
    config: dict[str, Any]


def read_run(read: Reader, rev: str, run: Run, evaluation: str, model: str) -> RunOutputs:
    """One finished run's files from its experiment commit (`read`: experiments.read_file)."""
    return RunOutputs(
        run=run,
        rev=rev,
        predictions=pd.read_csv(
            io.StringIO(read(rev, f"{evaluation}/{PREDICTIONS}")), dtype={"image_id": str}
        ),
        detail=json.loads(read(rev, f"{evaluation}/{DETAIL}")),
        config=json.loads(read(rev, f"{model}/{CONFIG}")),
    )


@dataclass(frozen=True)
class StudyData:
    """Aligned arrays of every run; logits[variant] is (S, N, K) in the study's seed order."""

    classes: list[str]
    negative_index: int
    image_ids: np.ndarray  # (N,) test images, one order for every run
    patients: np.ndarray  # (N,) pseudonymised patient ids
    labels: np.ndarray  # (N,) label index
    seeds: list[int]
    logits: dict[str, np.ndarray] = field(default_factory=dict)
    cost: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # variant -> one entry per seed


def align(outputs: list[RunOutputs], variants: list[str], seeds: list[int]) -> StudyData:
    """Stack the runs, each sorted by image id; refuse runs whose test images, patients, labels or classes
    differ from the first run's (the paired comparison needs the same test patients)."""
    first = outputs[0]
    classes = list(first.config["classes"])
    negative = str(first.detail["operating_point"]["negative_class"])
    reference = _ordered(first.predictions)
    data = StudyData(
        classes=classes,
        negative_index=classes.index(negative),
        image_ids=reference["image_id"].to_numpy(),
        patients=reference["patient_id"].astype(str).to_numpy(),
        labels=reference["label_index"].to_numpy(dtype=int),
        seeds=seeds,
    )
    by_key = {(item.run.variant, item.run.seed): item for item in outputs}
    for variant in variants:
        stacked = []
        for seed in seeds:
            item = by_key[(variant, seed)]
            frame = _ordered(item.predictions)
            same = list(item.config["classes"]) == classes and all(
                np.array_equal(frame[column].astype(str).to_numpy(), reference[column].astype(str).to_numpy())
                for column in ("image_id", "patient_id", "label_index")
            )
            if not same:
                raise RadflowError(
                    f"run {item.run.label} (experiment {item.rev[:7]}) was tested on other images, "
                    f"patients or classes than {first.run.label}: a paired comparison needs one "
                    "test split (the same data, preprocess settings and global seed for every run)"
                )
            stacked.append(frame[[f"logit_{name}" for name in classes]].to_numpy(dtype=float))
            data.cost.setdefault(variant, []).append(
                {**item.config.get("cost", {}), **item.detail.get("cost", {})}
            )
        data.logits[variant] = np.stack(stacked)
    return data


def _ordered(predictions: pd.DataFrame) -> pd.DataFrame:
    return predictions.sort_values("image_id", kind="stable").reset_index(drop=True)
