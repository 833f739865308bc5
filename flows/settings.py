"""The `retrain` section of params.yaml, parsed once into a strict dataclass the flow passes down."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from tasks.common.params import parse_section
from tasks.common.urls import check_url


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

    def __post_init__(self) -> None:
        if self.notify_webhook is not None:
            instead = "put a secret token in the URL's path, as chat webhooks do"
            check_url("retrain.notify_webhook", self.notify_webhook, ("https", "http"), instead)


def retrain_params(params: dict[str, Any]) -> RetrainParams:
    """Parse params.yaml's `retrain` section (strict: every key is required, defaults live in params.yaml)."""
    return parse_section(params, "retrain", RetrainParams)
