"""The study's statistics, pure functions over arrays: per-variant test ROC-AUC with a patient-bootstrap
interval, the paired difference to the reference with an interval over patients and seeds, the
seed-to-seed spread, and the Bonferroni correction of the intervals.

Every variant was scored on the same test images (checked before this runs), so one set of patient
resamples serves every variant: each difference compares the two variants on exactly the same patients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Metric = Callable[[np.ndarray, np.ndarray], float]  # (labels (N,), logits (N, K)) -> value


@dataclass(frozen=True)
class Draws:
    """The shared resamples: rows of the test images per patient draw, and seed indices per draw."""

    rows: list[np.ndarray]  # B arrays of row indices (whole patients drawn with replacement)
    seeds: np.ndarray  # (B, S) seed indices drawn with replacement (the same for every variant)


def draw(patients: np.ndarray, n_seeds: int, samples: int, seed: int) -> Draws:
    """`samples` resamples of whole patients (images of one patient are correlated, so the patient is the
    unit) and of seeds, from one seeded generator: the same draws for every variant."""
    rng = np.random.default_rng(seed)
    unique = np.unique(patients)
    rows_of = [np.flatnonzero(patients == p) for p in unique]
    rows = []
    for _ in range(samples):
        chosen = rng.integers(0, len(unique), size=len(unique))
        rows.append(np.concatenate([rows_of[i] for i in chosen]))
    return Draws(rows=rows, seeds=rng.integers(0, n_seeds, size=(samples, n_seeds)))


def per_draw(metric: Metric, labels: np.ndarray, logits: np.ndarray, draws: Draws) -> np.ndarray:
    """(S, B) metric of each seed's (N, K) logits (`logits`: (S, N, K)) on each patient draw."""
    return np.array([[metric(labels[rows], run[rows]) for rows in draws.rows] for run in logits])


def percentile_interval(values: np.ndarray, level: float) -> tuple[float | None, float | None]:
    """Central `level` percentile interval of the finite values (None when there are none)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None, None
    tail = 100 * (1 - level) / 2
    return float(np.percentile(finite, tail)), float(np.percentile(finite, 100 - tail))


@dataclass(frozen=True)
class VariantScore:
    """One variant's metric: mean over seeds, its patient-bootstrap interval, and the seeds' spread."""

    mean: float
    low: float | None
    high: float | None
    per_seed: list[float]
    seed_sd: float | None  # sample standard deviation over seeds (None with one seed: not measured)


def variant_score(
    metric: Metric, labels: np.ndarray, logits: np.ndarray, sampled: np.ndarray
) -> VariantScore:
    """`logits` (S, N, K), `sampled` its (S, B) per_draw values: the seed-averaged metric with a 95%
    interval over patient resamples (seeds averaged inside each draw)."""
    per_seed = [metric(labels, run) for run in logits]
    low, high = percentile_interval(np.nanmean(sampled, axis=0), 0.95)
    spread = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else None
    return VariantScore(float(np.mean(per_seed)), low, high, per_seed, spread)


@dataclass(frozen=True)
class Difference:
    """variant - reference: the seed-averaged difference, its corrected interval, and what it means."""

    estimate: float
    low: float | None
    high: float | None
    level: float  # the interval's coverage after correction, e.g. 0.99375 for 8 comparisons
    verdict: str  # "better", "worse" or "indistinguishable" (the interval includes zero)


def paired_difference(
    variant: np.ndarray, reference: np.ndarray, per_seed: np.ndarray, draws: Draws, level: float
) -> Difference:
    """Paired difference from the (S, B) per-draw metrics of both (same patients in every draw) and their
    (S,) full-sample difference per seed. In each draw the seeds are resampled too (the same seed
    indices for both: seed s of each is trained with train.seed s), so the interval covers patient-to-
    patient and seed-to-seed variation; `level` is the corrected coverage."""
    gaps = variant - reference  # (S, B)
    columns = np.arange(gaps.shape[1])
    resampled = gaps[draws.seeds.T, columns].mean(axis=0)  # (B,): mean over the drawn seeds of each draw
    low, high = percentile_interval(resampled, level)
    estimate = float(np.mean(per_seed))
    if low is None or high is None or low <= 0 <= high:
        verdict = "indistinguishable"
    else:
        verdict = "better" if low > 0 else "worse"
    return Difference(estimate, low, high, level, verdict)


def bonferroni_level(comparisons: int, level: float = 0.95) -> float:
    """Per-interval coverage so that all `comparisons` intervals hold together with `level` (Bonferroni)."""
    return 1 - (1 - level) / max(comparisons, 1)
