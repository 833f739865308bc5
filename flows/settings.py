"""The `retrain` section of params.yaml, parsed once into a strict dataclass the flow passes down."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from tasks.common.params import check_values, parse_section


@dataclass(frozen=True)
class RetrainParams:
    """How the Prefect retrain flow syncs data, retries, locks, pushes and notifies."""

    incoming: str | None  # folder of newly arrived studies synced into ingest.source; None = off
    incoming_settle_s: float  # files modified more recently than this are still arriving: next run
    dvc_remote: str | None  # `dvc push -r <remote>` after a successful run; None = no push
    retries: int  # retries of a stage after a transient failure (I/O, lock held)
    retry_delay_s: float  # first retry delay; doubles on every further retry
    lock_wait_s: float  # how long a second run waits for the project lock before it is skipped
    notify_command: str | None  # shell-free command run on failure/promotion; event JSON on stdin
    notify_webhook: str | None  # URL that gets the event JSON as an HTTP POST
    notify_on: tuple[Literal["failure", "promotion"], ...]
    on_drift: bool  # retrain when the last `radflow monitor` found drift (tasks.monitor.policy)
    on_decay: bool  # retrain when it found a month whose ROC-AUC interval fell below the champion's
    min_new_labelled: int  # ...and only with at least this many labelled arrivals since the champion

    def __post_init__(self) -> None:
        check_values(
            "retrain", self, {"min_new_labelled": (lambda v: v >= 0, "an integer >= 0 (0 = no minimum)")}
        )


def retrain_params(params: dict[str, Any]) -> RetrainParams:
    """Parse params.yaml's `retrain` section (strict: every key is required, defaults live in params.yaml)."""
    return parse_section(params, "retrain", RetrainParams)
