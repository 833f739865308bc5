"""The promotion gate: between the evaluated candidate and the registry's champion.

The champion is re-scored on the candidate's own test split, so both are judged on the same images.
The candidate passes when the paired, patient-level bootstrap interval of (candidate - champion) on the
primary metric lies above -margin (non-inferiority), its test metrics meet the absolute floors, the
evaluation found that it learned, and its test ROC-AUC beats the simple baseline's by a margin.
Passing registers it as a new version and moves `champion`; failing only appends an audit entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

import models
from models.inference import predict_logits
from models.registry import Registry
from tasks.common.errors import RadflowError
from tasks.common.metrics import metric_by_name, patient_bootstrap
from tasks.common.params import section
from tasks.common.scoring import read_store

Floor = Annotated[float, Field(ge=0, le=1)]  # on a metric that lies in [0, 1]


@section("promote")
class PromoteParams:
    """params.yaml `promote` section (see the comments there)."""

    primary_metric: Literal["roc_auc", "pr_auc", "accuracy", "balanced_accuracy"]
    non_inferiority_margin: Floor
    min_roc_auc: Floor
    min_sensitivity: Floor
    min_specificity: Floor
    min_margin_over_baseline: Annotated[float, Field(ge=-1, le=1)]
    require_learned: bool
    bootstrap_samples: Annotated[int, Field(ge=10)]  # fewer cannot place a 2.5 % percentile
    batch_size: Annotated[int, Field(ge=1)]
    lock_timeout_s: Annotated[float, Field(ge=0)]


def check_floors(metrics: dict[str, Any], settings: PromoteParams) -> dict[str, dict[str, Any]]:
    """Each absolute floor with the candidate's value and whether it is met (an undefined value fails)."""
    floors = {
        "roc_auc": settings.min_roc_auc,
        "sensitivity": settings.min_sensitivity,
        "specificity": settings.min_specificity,
    }
    return {
        name: {
            "value": metrics.get(name),
            "floor": floor,
            "met": metrics.get(name) is not None and metrics[name] >= floor,
        }
        for name, floor in floors.items()
    }


def check_baseline(metrics: dict[str, Any], settings: PromoteParams) -> dict[str, Any]:
    """Does the candidate's test ROC-AUC beat the simple baseline's by `min_margin_over_baseline`?

    The requirement is capped at 1 - margin: when the baseline itself is near perfect (the demo's
    classes differ in shape), no network could beat it by the full margin. A missing value fails.
    """
    value, baseline = metrics.get("roc_auc"), metrics.get("baseline_roc_auc")
    margin = settings.min_margin_over_baseline
    required = None if baseline is None else min(baseline + margin, 1.0 - margin)
    return {
        "value": value,
        "baseline": baseline,
        "margin": margin,
        "required": required,
        "met": value is not None and required is not None and value >= required,
    }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def refusals(
    floors: dict[str, dict[str, Any]],
    baseline: dict[str, Any],
    metrics: dict[str, Any],
    require_learned: bool,
) -> list[str]:
    """Why the candidate cannot be promoted whatever the champion is (empty: nothing against it)."""
    reasons = []
    if not all(floor["met"] for floor in floors.values()):
        reasons.append("floors not met: " + ", ".join(name for name, f in floors.items() if not f["met"]))
    if require_learned and metrics.get("learned") is not True:
        why = "; ".join(metrics.get("learning_warnings") or ["the evaluation records no learning check"])
        reasons.append(f"the model did not learn: {why}")
    if not baseline["met"]:
        reasons.append(
            f"test ROC-AUC {_fmt(baseline['value'])} does not beat the simple baseline's "
            f"{_fmt(baseline['baseline'])} by promote.min_margin_over_baseline {baseline['margin']} "
            f"(needs {_fmt(baseline['required'])})"
        )
    return reasons


def compare(
    labels: np.ndarray,
    patients: np.ndarray,
    candidate: np.ndarray,
    champion: np.ndarray,
    settings: PromoteParams,
    seed: int,
) -> dict[str, Any]:
    """Paired bootstrap of (candidate - champion) on the primary metric over the same test patients."""
    metric = settings.primary_metric

    def difference(rows: np.ndarray) -> dict[str, float]:
        cand = metric_by_name(metric, labels[rows], candidate[rows])
        champ = metric_by_name(metric, labels[rows], champion[rows])
        return {"difference": cand - champ}

    everything = np.arange(len(labels))
    low, high = patient_bootstrap(patients, difference, samples=settings.bootstrap_samples, seed=seed)[
        "difference"
    ]
    return {
        "metric": metric,
        "candidate": metric_by_name(metric, labels, candidate),
        "champion": metric_by_name(metric, labels, champion),
        "difference": difference(everything)["difference"],
        "difference_ci95": [low, high],
        "margin": settings.non_inferiority_margin,
        "non_inferior": low is not None and low > -settings.non_inferiority_margin,
    }


def champion_logits(registry: Registry, store_dir: Path, rows: np.ndarray, batch_size: int) -> np.ndarray:
    """Re-score the verified champion on the given store rows (the candidate's test split)."""
    champion = registry.load("champion")
    model, config = models.load_model(champion.path)
    store = read_store(store_dir)
    if list(config["classes"]) != list(store.classes):
        raise RadflowError(
            f"champion v{champion.version} predicts {config['classes']} but the data has {store.classes}; "
            "it cannot be compared automatically — after review, register it on purpose with "
            "`radflow registry register MODEL_DIR --reason TEXT [--champion]` (MODEL_DIR: paths.model)"
        )
    return predict_logits(model, config, store.images, rows, batch_size)


def decide(
    registry: Registry,
    *,
    settings: PromoteParams,
    metrics: dict[str, Any],
    predictions: pd.DataFrame,
    weights_sha256: str,
    store_dir: Path,
    seed: int,
) -> dict[str, Any]:
    """The gate's decision and every number behind it (nothing is written here)."""
    floors = check_floors(metrics, settings)
    baseline = check_baseline(metrics, settings)
    against = refusals(floors, baseline, metrics, settings.require_learned)
    champion = registry.aliases()["champion"]
    decision: dict[str, Any] = {
        "champion_before": champion, "floors": floors, "baseline": baseline, "comparison": None
    }  # fmt: skip
    if champion is None:
        return {
            **decision,
            "promoted": not against,
            "reasons": against or ["first model: floors met, learned, beats the simple baseline"],
        }
    entry = next(row for row in registry.versions() if row["version"] == champion)
    if entry["weights_sha256"] == weights_sha256:
        return {**decision, "promoted": False, "reasons": [f"candidate is already champion v{champion}"]}
    logit_columns = [column for column in predictions.columns if column.startswith("logit_")]
    if not logit_columns:
        raise RadflowError("test_predictions.csv has no logit_ columns; rerun `radflow stage evaluate`")
    labels = predictions["label_index"].to_numpy(dtype=int)
    candidate = predictions[logit_columns].to_numpy(dtype=np.float64)
    try:
        champ = champion_logits(registry, store_dir, predictions["row"].to_numpy(), settings.batch_size)
    except RadflowError as error:
        return {**decision, "promoted": False, "reasons": [*against, str(error)]}
    comparison = compare(labels, predictions["patient_id"].to_numpy(), candidate, champ, settings, seed)
    reasons = list(against)
    if not comparison["non_inferior"]:
        reasons.append(
            f"inferior to champion v{champion}: {comparison['metric']} difference CI lower bound "
            f"{comparison['difference_ci95'][0]} <= -{settings.non_inferiority_margin}"
        )
    promoted = not reasons
    return {
        **decision,
        "comparison": comparison,
        "promoted": promoted,
        "reasons": reasons
        or [f"non-inferior to champion v{champion}; floors met, learned, beats the simple baseline"],
    }
