"""The `retrain` section of params.yaml, parsed once into a strict dataclass the flow passes down."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from tasks.common.params import Lax, parse_section, section
from tasks.common.urls import check_url

Seconds = Annotated[float, Field(ge=0)]


@section("retrain")
class RetrainParams:
    """How the Prefect retrain flow syncs data, retries, locks, pushes and notifies."""

    # folder of newly arrived studies synced into ingest.source; None = off
    incoming: Annotated[str | None, Field(min_length=1, description="a folder, or null (off)")]
    incoming_settle_s: Seconds  # files modified more recently than this are still arriving: next run
    # `dvc push -r <remote>` after a successful run; None = no push
    dvc_remote: Annotated[str | None, Field(min_length=1, description="a DVC remote name, or null (no push)")]
    retries: Annotated[
        int, Field(ge=0, le=5)
    ]  # retries of a stage after a transient failure (I/O, lock held)
    retry_delay_s: Seconds  # first retry delay; doubles on every further retry
    lock_wait_s: Seconds  # how long a second run waits for the project lock before it is skipped
    # shell-free command run on failure/promotion; event JSON on stdin
    notify_command: Annotated[str | None, Field(min_length=1, description="a command (no shell), or null")]
    # URL that gets the event JSON as an HTTP POST
    # checked by _webhook_url, which never repeats credentials
    notify_webhook: Annotated[str | None, Field(description="an http(s):// URL, or null")]
    notify_on: Annotated[tuple[Literal["failure", "promotion"], ...], Lax]
    on_drift: bool  # retrain when the last `radflow monitor` found drift (tasks.monitor.policy)
    on_decay: bool  # retrain when it found a month whose ROC-AUC interval fell below the champion's
    # ...and only with at least this many labelled arrivals since the champion (0 = no minimum)
    min_new_labelled: Annotated[int, Field(ge=0)]

    @model_validator(mode="after")
    def _webhook_url(self) -> RetrainParams:
        if self.notify_webhook is not None:
            instead = "put a secret token in the URL's path, as chat webhooks do"
            check_url("retrain.notify_webhook", self.notify_webhook, ("https", "http"), instead)
        return self


def retrain_params(params: dict[str, Any]) -> RetrainParams:
    """Parse params.yaml's `retrain` section (strict: every key is required, defaults live in params.yaml)."""
    return parse_section(params, "retrain", RetrainParams)
