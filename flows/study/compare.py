"""The study's comparison from its aligned runs: one row per variant (metric, interval, seed spread, the
paired difference to the reference with its corrected interval and verdict, cost), pure."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from flows.study.collect import StudyData
from flows.study.stats import (
    Difference,
    VariantScore,
    bonferroni_level,
    draw,
    paired_difference,
    per_draw,
    variant_score,
)
from tasks.common.metrics import roc_auc

METRICS = {"roc_auc": roc_auc}  # study metric name -> (labels, logits) -> value, as evaluate computes it
COST_KEYS = ("train_seconds_per_image", "inference_seconds_per_image", "parameters", "peak_memory_mb")


@dataclass(frozen=True)
class VariantRow:
    """One variant's line of the study table."""

    variant: str
    score: VariantScore
    difference: Difference | None  # None for the reference itself
    cost: dict[str, float | None]  # mean over seeds of each COST_KEYS entry (None when not recorded)


@dataclass(frozen=True)
class Comparison:
    """The whole study result, ready to be written."""

    metric: str
    reference: str
    seeds: list[int]
    n_test_images: int
    n_test_patients: int
    bootstrap_samples: int
    level: float  # coverage of each difference interval after the correction
    correction: str  # the multiple-comparison correction, in words
    rows: list[VariantRow]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(
    data: StudyData, variants: list[str], reference: str, metric: str, samples: int, seed: int
) -> Comparison:
    """Every variant against `reference` on the same patient (and seed) resamples."""
    score = METRICS[metric]
    draws = draw(data.patients, len(data.seeds), samples, seed)
    sampled = {name: per_draw(score, data.labels, data.logits[name], draws) for name in variants}
    full = {name: np.array([score(data.labels, run) for run in data.logits[name]]) for name in variants}
    others = [name for name in variants if name != reference]
    level = bonferroni_level(len(others))
    rows = []
    for name in variants:
        difference = None
        if name != reference:
            difference = paired_difference(
                sampled[name], sampled[reference], full[name] - full[reference], draws, level
            )
        rows.append(
            VariantRow(
                variant=name,
                score=variant_score(score, data.labels, data.logits[name], sampled[name]),
                difference=difference,
                cost=mean_cost(data.cost.get(name, [])),
            )
        )
    return Comparison(
        metric=metric,
        reference=reference,
        seeds=data.seeds,
        n_test_images=len(data.labels),
        n_test_patients=len(np.unique(data.patients)),
        bootstrap_samples=samples,
        level=level,
        correction=(
            f"Bonferroni over {len(others)} comparisons with {reference}: each difference interval covers "
            f"{level:.2%}, so all hold together with 95% confidence"
        ),
        rows=rows,
    )


def mean_cost(entries: list[dict[str, Any]]) -> dict[str, float | None]:
    """Mean over the seeds' runs of each cost figure (None when no run recorded it)."""
    result: dict[str, float | None] = {}
    for key in COST_KEYS:
        values = [float(entry[key]) for entry in entries if isinstance(entry.get(key), int | float)]
        result[key] = float(np.mean(values)) if values else None
    return result
