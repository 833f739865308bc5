"""The scheduled retrain deployment: the retrain flow served on a cron schedule."""

from __future__ import annotations

import os

from rich.console import Console

from tasks.common.errors import RadflowError

DEPLOYMENT = "weekly-retrain"


def serve_retrain(cron: str, console: Console) -> None:
    """Serve the retrain flow as a deployment on a cron schedule (blocks; each run uses params.yaml)."""
    from prefect.client.schemas.schedules import CronSchedule

    from flows.retrain import retrain_flow

    try:
        CronSchedule(cron=cron)
    except ValueError as error:
        raise RadflowError(f"--cron {cron!r} is not a valid cron expression (e.g. '0 2 * * 1')") from error
    if not os.environ.get("PREFECT_API_URL"):
        console.print(
            "[yellow]warning:[/] PREFECT_API_URL is not set, so the schedule lives in a temporary server "
            "that ends with this process. Start `radflow server` and export the URL it prints."
        )
    retrain_flow.serve(name=DEPLOYMENT, cron=cron, parameters={"overrides": []})
