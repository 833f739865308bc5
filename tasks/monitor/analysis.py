"""Everything `radflow monitor` computes from the logged arrivals, as plain data: the drift tests, the
out-of-distribution and flagged shares, temporal validation, the monthly time series and the warnings.

Pure: the edge (tasks.monitor.stage) reads the log, the champion and the labels and writes the files.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tasks.common.data_profile import CONTEXT, HEADER, STATISTICS
from tasks.monitor import decay, drift
from tasks.monitor.settings import MonitorParams

SERIES = ("month", "arrivals", "ood_share", "classified", "flagged_share", "log_odds_median")
PERFORMANCE = ("labelled", "positives", "roc_auc", "roc_auc_ci_low", "roc_auc_ci_high")


@dataclass(frozen=True)
class Reference:
    """What the champion's registry version says about its data: the training profile (config.json's
    data_profile; {} for a model without one), its validation block and its test ROC-AUC."""

    profile: dict[str, Any]
    validation: dict[str, Any]
    test_roc_auc: float | None
    negative_class: str


@dataclass(frozen=True)
class Findings:
    """The monitor's results: `metrics` for metrics.json, `series` (one row per month), `warnings`."""

    metrics: dict[str, Any]
    series: pd.DataFrame
    warnings: list[str]


def arrivals_frame(entries: list[dict[str, Any]]) -> pd.DataFrame:
    """Log entries -> one row each, statistics as `image_<name>` columns and the arrival `month`."""
    rows = []
    for entry in entries:
        statistics = entry.get("statistics") or {}
        rows.append(
            {key: value for key, value in entry.items() if key != "statistics"}
            | {f"image_{name}": statistics.get(name) for name in STATISTICS}
        )
    columns = ["image_id", "study_id", "patient_id", "arrived", *HEADER, *CONTEXT, "out_of_distribution"]
    frame = pd.DataFrame(rows).reindex(
        columns=[*columns, "abnormal_log_odds", "abnormal", *(f"image_{n}" for n in STATISTICS)]
    )
    frame["arrived"] = pd.to_datetime(frame["arrived"], utc=True, format="ISO8601")
    frame["month"] = frame["arrived"].dt.strftime("%Y-%m")
    frame["abnormal_log_odds"] = pd.to_numeric(frame["abnormal_log_odds"], errors="coerce")
    for name in (*HEADER, *CONTEXT):
        frame[name] = frame[name].fillna("").astype(str)
    frame["out_of_distribution"] = frame["out_of_distribution"].fillna(False).astype(bool)
    return frame


def drift_tests(
    arrivals: pd.DataFrame, reference: Reference, settings: MonitorParams
) -> list[drift.DriftTest]:
    """One corrected family: each header attribute, each image statistic, and the abnormal log-odds
    (classified arrivals against the validation split's), where both sides have data."""
    profile = reference.profile
    counts = {**profile.get("header", {}), **profile.get("context", {})}
    tests = [
        drift.categorical(name, counts.get(name, {}), arrivals[name].tolist()) for name in (*HEADER, *CONTEXT)
    ]
    n_train = int(profile.get("images", 0))
    for name, quantiles in profile.get("quantiles", {}).items():
        values = pd.to_numeric(arrivals[f"image_{name}"], errors="coerce").dropna().tolist()
        tests.append(drift.continuous(name, "statistic", quantiles, n_train, values))
    validation = reference.validation
    scores = arrivals["abnormal_log_odds"].dropna().tolist()
    tests.append(
        drift.continuous(
            "abnormal_log_odds", "prediction", validation.get("abnormal_log_odds_quantiles", []),
            int(validation.get("n_images", 0)), scores,
        )
    )  # fmt: skip
    return drift.correct([test for test in tests if test is not None], settings.alpha, settings.min_effect)


def monthly(arrivals: pd.DataFrame) -> pd.DataFrame:
    """Per arrival month: arrivals, OOD share, classified count, flagged share, median log-odds."""
    rows = []
    for month, group in arrivals.groupby("month", sort=True):
        classified = group[group["abnormal_log_odds"].notna()]
        flags = classified["abnormal"].dropna().astype(bool)
        rows.append(
            {
                "month": month,
                "arrivals": len(group),
                "ood_share": float(group["out_of_distribution"].mean()),
                "classified": len(classified),
                "flagged_share": float(flags.mean()) if len(flags) else np.nan,
                "log_odds_median": float(classified["abnormal_log_odds"].median())
                if len(classified)
                else np.nan,
            }
        )
    return pd.DataFrame(rows, columns=list(SERIES))


def analyse(
    arrivals: pd.DataFrame,
    reference: Reference,
    settings: MonitorParams,
    *,
    labels: pd.DataFrame | None,
    seed: int,
) -> Findings:
    """Drift, prediction drift and (with labels) temporal validation of the arrivals, with warnings."""
    warnings: list[str] = []
    metrics: dict[str, Any] = {"arrivals": len(arrivals)}
    ood_share = float(arrivals["out_of_distribution"].mean()) if len(arrivals) else 0.0
    metrics["ood_share"] = ood_share
    if len(arrivals) and ood_share > settings.max_ood_share:
        warnings.append(
            f"out-of-distribution share {ood_share:.1%} of {len(arrivals)} arrivals is above "
            f"monitor.max_ood_share {settings.max_ood_share:.1%}"
        )
    if len(arrivals) >= settings.min_arrivals:
        tests = drift_tests(arrivals, reference, settings)
        metrics["drift"] = [dataclasses.asdict(test) for test in tests]
        metrics["drifted"] = [test.attribute for test in tests if test.drift]
        warnings += [
            f"drift in {test.attribute} ({test.method}, Holm p={test.p_adjusted:.2g}, effect "
            f"{test.effect:.2f}): {test.moved}"
            for test in tests
            if test.drift
        ]
    else:
        metrics["drift"], metrics["drifted"] = [], []
        metrics["drift_note"] = f"{len(arrivals)} arrivals: fewer than monitor.min_arrivals, drift not tested"
    flags = arrivals["abnormal"].dropna().astype(bool)
    metrics["flagged_share"] = float(flags.mean()) if len(flags) else None
    reference_share = reference.validation.get("flagged_share")
    metrics["validation_flagged_share"] = reference_share
    if len(flags) >= settings.min_arrivals and reference_share is not None:
        change = float(flags.mean()) - reference_share
        if abs(change) > settings.max_flagged_change:
            warnings.append(
                f"flagged-abnormal share {flags.mean():.1%} of {len(flags)} classified arrivals vs "
                f"{reference_share:.1%} on validation: moved more than monitor.max_flagged_change "
                f"{settings.max_flagged_change:.1%}"
            )
    series = monthly(arrivals)
    if labels is not None:
        temporal = decay.temporal_validation(
            decay.join_labels(arrivals, labels, reference.negative_class),
            min_labelled=settings.min_labelled,
            samples=settings.bootstrap_samples,
            seed=seed,
        )
        metrics["temporal_validation"] = temporal
        by_month = pd.DataFrame.from_dict(temporal["month"], orient="index").reindex(
            columns=list(PERFORMANCE)
        )
        series = series.merge(by_month, left_on="month", right_index=True, how="left")
        if reference.test_roc_auc is not None:
            metrics["decayed"] = decay.decayed(
                temporal["month"], reference.test_roc_auc, settings.decay_margin
            )
        warnings += decay_warnings(temporal["month"], reference.test_roc_auc, settings.decay_margin)
    metrics["warnings"] = warnings
    return Findings(metrics, series, warnings)


def decay_warnings(
    by_month: dict[str, dict[str, Any]], test_roc_auc: float | None, margin: float
) -> list[str]:
    """One line per month whose ROC-AUC interval lies below the champion's test ROC-AUC minus `margin`."""
    if test_roc_auc is None:
        return []
    lines = []
    for month in decay.decayed(by_month, test_roc_auc, margin):
        figures = by_month[month]
        lines.append(
            f"decay in {month}: ROC-AUC {figures['roc_auc']:.3f} (95% CI {figures['roc_auc_ci_low']:.3f}-"
            f"{figures['roc_auc_ci_high']:.3f}) on {figures['labelled']} labelled arrivals, below the "
            f"champion's test ROC-AUC {test_roc_auc:.3f} minus monitor.decay_margin {margin}"
        )
    return lines
