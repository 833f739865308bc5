"""The `monitor` section of params.yaml, parsed once into a strict, range-checked section class."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from tasks.common.params import parse_section, section

Share = Annotated[float, Field(ge=0, le=1)]


@section("monitor")
class MonitorParams:
    """params.yaml `monitor` section: the prediction log's rotation and the monitor's thresholds."""

    log_max_mb: Annotated[float, Field(gt=0)]  # a log file past this size (MB) continues in a next part
    alpha: Annotated[float, Field(gt=0, lt=1)]  # family-wise error rate of one run's drift tests (Holm)
    min_effect: Share  # Cramer's V / KS D below which a significant difference is not called drift
    min_arrivals: Annotated[int, Field(ge=2)]  # fewer logged arrivals than this: no drift test (too few)
    max_ood_share: Share  # warn when more arrivals than this share were out of distribution
    max_flagged_change: Share  # warn when the flagged-abnormal share moved more than this from validation's
    decay_margin: Share  # warn when a month's ROC-AUC upper 95% bound is below the registered test AUC - this
    min_labelled: Annotated[int, Field(ge=2)]  # months with fewer labelled arrivals report counts only
    bootstrap_samples: Annotated[int, Field(ge=10)]  # patient-level resamples for the temporal intervals


def monitor_params(params: dict[str, Any]) -> MonitorParams:
    """Parse params.yaml's `monitor` section."""
    return parse_section(params, "monitor", MonitorParams)
