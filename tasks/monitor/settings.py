"""The `monitor` section of params.yaml, parsed once into a strict dataclass."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tasks.common.params import Check, check_values, parse_section

CHECKS: dict[str, Check] = {  # what parse_section's types do not catch
    "log_max_mb": (lambda v: v > 0, "a size in MB > 0 (64 typical)"),
    "alpha": (lambda v: 0 < v < 1, "a probability between 0 and 1 (0.01 typical)"),
    "min_effect": (lambda v: 0 <= v <= 1, "an effect size from 0 to 1 (0.1 typical)"),
    "min_arrivals": (lambda v: v >= 2, "an integer >= 2 (30 typical)"),
    "max_ood_share": (lambda v: 0 <= v <= 1, "a share from 0 to 1 (0.05 typical)"),
    "max_flagged_change": (lambda v: 0 <= v <= 1, "a share from 0 to 1 (0.1 typical)"),
    "decay_margin": (lambda v: 0 <= v <= 1, "an ROC-AUC difference from 0 to 1 (0.05 typical)"),
    "min_labelled": (lambda v: v >= 2, "an integer >= 2 (20 typical)"),
    "bootstrap_samples": (lambda v: v >= 10, "an integer >= 10 (500-2000 typical)"),
}


@dataclass(frozen=True)
class MonitorParams:
    """params.yaml `monitor` section: the prediction log's rotation and the monitor's thresholds."""

    log_max_mb: float  # a log file past this size is continued in the month's next part
    alpha: float  # family-wise error rate of all drift tests of one run (Holm-corrected)
    min_effect: float  # Cramer's V / KS D below which a significant difference is not called drift
    min_arrivals: int  # fewer logged arrivals than this: no drift test (too few to tell)
    max_ood_share: float  # warn when more arrivals than this share were out of distribution
    max_flagged_change: float  # warn when the flagged-abnormal share moved more than this from validation's
    decay_margin: float  # warn when a month's ROC-AUC upper 95% bound is below the registered test AUC - this
    min_labelled: int  # months with fewer labelled arrivals report counts only
    bootstrap_samples: int  # patient-level resamples for the temporal-validation intervals

    def __post_init__(self) -> None:
        check_values("monitor", self, CHECKS)


def monitor_params(params: dict[str, Any]) -> MonitorParams:
    """Parse params.yaml's `monitor` section."""
    return parse_section(params, "monitor", MonitorParams)
