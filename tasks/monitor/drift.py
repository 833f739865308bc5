"""Drift of arrivals against the champion's training data: pure functions over counts and samples.

Header attributes (modality, manufacturer, body part, photometric, pixel spacing band) are compared as
categories: a 2 x k contingency table (training counts, arrival counts) tested by chi-square, or by
Fisher's exact test when the table is 2 x 2 with an expected count below 5; the effect size is
Cramer's V. Image statistics (and the abnormal log-odds against the validation split's) are compared
by the two-sample Kolmogorov-Smirnov test; the effect size is the KS distance D. The training side of
a statistic is its stored quantiles, expanded into a sample as large as the training set (the empirical
distribution between percentiles is linear: D is off by well under 0.01).

All tests of one run form one family, corrected by Holm's step-down method (a few lines here:
statsmodels is not a dependency). An attribute drifts when its corrected p-value is below `alpha` AND
its effect reaches `min_effect`: a log of 100,000 studies makes a trivial shift significant.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats
from scipy.stats.contingency import association

MAX_REFERENCE = 20_000  # quantile expansion cap: beyond it a larger sample changes no p-value visibly
MIN_EXPECTED = 5  # the chi-square approximation's usual rule; below it a 2 x 2 table gets Fisher's test


@dataclass(frozen=True)
class DriftTest:
    """One attribute's comparison of arrivals with the reference (training, or validation for the
    prediction); `p_adjusted` and `drift` are set by `correct`."""

    attribute: str
    kind: str  # header | statistic | prediction
    method: str  # chi-square | fisher | ks
    p_value: float
    effect: float  # Cramer's V or KS D, 0-1
    n_reference: int
    n_arrivals: int
    moved: str  # what changed, in words: the category whose share moved most, or the median's shift
    p_adjusted: float = math.nan
    drift: bool = False


def categorical(attribute: str, reference: dict[str, int], arrivals: Sequence[str]) -> DriftTest | None:
    """Arrivals' values of one header attribute against the training counts; None when there is
    nothing to compare (no known value on a side, or one and the same value on both)."""
    observed = Counter(value for value in arrivals if value)
    known = {value: count for value, count in reference.items() if value and count > 0}
    categories = sorted(set(known) | set(observed))
    if not known or not observed or len(categories) < 2:
        return None
    table = np.array([[known.get(c, 0) for c in categories], [observed.get(c, 0) for c in categories]])
    expected = stats.contingency.expected_freq(table)
    if table.shape == (2, 2) and expected.min() < MIN_EXPECTED:
        method, p_value = "fisher", float(stats.fisher_exact(table).pvalue)
    else:
        method, p_value = "chi-square", float(stats.chi2_contingency(table).pvalue)
    shares = table / table.sum(axis=1, keepdims=True)
    most = int(np.abs(shares[1] - shares[0]).argmax())
    moved = f"{categories[most]} {shares[0, most]:.0%} of training, {shares[1, most]:.0%} of arrivals"
    return DriftTest(
        attribute, "header", method, p_value, float(association(table, method="cramer")),
        int(table[0].sum()), int(table[1].sum()), moved,
    )  # fmt: skip


def quantile_sample(quantiles: Sequence[float], n: int) -> np.ndarray:
    """(min(n, MAX_REFERENCE),) values spread as the distribution the evenly spaced `quantiles` describe."""
    size = max(1, min(n, MAX_REFERENCE))
    levels = np.linspace(0.0, 1.0, len(quantiles))
    return np.interp((np.arange(size) + 0.5) / size, levels, np.asarray(quantiles, dtype=np.float64))


def continuous(
    attribute: str, kind: str, quantiles: Sequence[float], n_reference: int, arrivals: Sequence[float]
) -> DriftTest | None:
    """Arrivals' values against a reference distribution given by its quantiles; None without values."""
    values = np.asarray([v for v in arrivals if v is not None and math.isfinite(v)], dtype=np.float64)
    if not len(values) or not len(quantiles) or n_reference < 1:
        return None
    reference = quantile_sample(quantiles, n_reference)
    result = stats.ks_2samp(reference, values)
    before, after = float(np.median(reference)), float(np.median(values))
    return DriftTest(
        attribute, kind, "ks", float(result.pvalue), float(result.statistic), n_reference, len(values),
        f"median {before:.3g} in the reference, {after:.3g} in arrivals",
    )  # fmt: skip


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control under any dependence)."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def correct(tests: Sequence[DriftTest], alpha: float, min_effect: float) -> list[DriftTest]:
    """The tests with Holm-adjusted p-values and their drift verdicts."""
    adjusted = holm([test.p_value for test in tests]) if tests else np.array([])
    return [
        replace(test, p_adjusted=float(p), drift=bool(p < alpha and test.effect >= min_effect))
        for test, p in zip(tests, adjusted, strict=True)
    ]
