"""The retrain policy: whether a retrain should run, and why, from the last monitor run's evidence.

The retrain flow (or a deployment's schedule) calls `retrain_decision` with the `retrain` section's
`on_drift`, `on_decay` and `min_new_labelled` and the monitor's metrics.json; the decision's reasons
are what the run says about why it ran (or why it did not). Evidence about another model than the
current champion is stale and ignored: the monitor has to run again after a promotion.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.common.record import read_object
from tasks.monitor.stage import METRICS_FILE


@dataclass(frozen=True)
class RetrainDecision:
    """Whether to run, and the reasons in words (the triggers, or what held the run back)."""

    run: bool
    reasons: list[str]

    def describe(self) -> str:
        return ("retrain: " if self.run else "no retrain: ") + "; ".join(self.reasons)


def monitor_evidence(monitor_dir: Path) -> dict[str, Any]:
    """The last monitor run's metrics.json under paths.monitor ({} when it never ran)."""
    return read_object(monitor_dir / METRICS_FILE)


def new_labelled(evidence: dict[str, Any]) -> int:
    """Labelled arrivals since the champion, summed over the months the monitor validated."""
    months = (evidence.get("temporal_validation") or {}).get("month") or {}
    return sum(int(figures.get("labelled", 0)) for figures in months.values())


def retrain_decision(
    evidence: dict[str, Any],
    *,
    champion: str | None,
    scheduled: bool,
    on_drift: bool,
    on_decay: bool,
    min_new_labelled: int,
) -> RetrainDecision:
    """Run when scheduled, or on drift / decay when the policy says so, given enough new labels.

    `champion` is the current champion's label (`v3`; None without one): evidence of another version
    is not used. `scheduled` is true for a run the clock started.
    """
    triggers = ["scheduled"] if scheduled else []
    if evidence and champion is not None and evidence.get("champion") != champion:
        stale = f"the monitor results are of {evidence.get('champion')}, not the champion {champion}"
        return _decide(triggers, [stale], 0, min_new_labelled)
    if on_drift and evidence.get("drifted"):
        triggers.append(f"drift in {', '.join(evidence['drifted'])}")
    if on_decay and evidence.get("decayed"):
        triggers.append(f"decay in {', '.join(evidence['decayed'])}")
    return _decide(triggers, [], new_labelled(evidence), min_new_labelled)


def _decide(triggers: list[str], notes: list[str], labelled: int, minimum: int) -> RetrainDecision:
    if not triggers:
        return RetrainDecision(False, [*notes, "no schedule, drift or decay trigger"])
    if labelled < minimum:
        held = f"only {labelled} new labelled arrivals (retrain.min_new_labelled {minimum})"
        return RetrainDecision(False, [*triggers, *notes, held])
    return RetrainDecision(True, [*triggers, *notes, f"{labelled} new labelled arrivals"])
