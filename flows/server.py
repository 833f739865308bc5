"""The local Prefect server (UI + API, data kept in the project) and the scheduled retrain deployment."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from rich.console import Console

from tasks.errors import RadflowError

PREFECT_DIR = ".prefect"  # git-ignored; holds the server's SQLite database and settings
DEPLOYMENT = "weekly-retrain"


def server_env(project: Path) -> dict[str, str]:
    """The environment for a Prefect server whose data lives in `<project>/.prefect`."""
    return {**os.environ, "PREFECT_HOME": str((project / PREFECT_DIR).resolve())}


def api_url(host: str, port: int) -> str:
    """What clients set as PREFECT_API_URL to talk to that server."""
    return f"http://{host}:{port}/api"


def run_server(project: Path, host: str, port: int, console: Console) -> int:
    """Run `prefect server start` in the foreground until Ctrl-C; returns its exit status."""
    console.print(
        f"Prefect UI: http://{host}:{port}   (data in {project / PREFECT_DIR})\n"
        f"In other shells, point radflow at it:  export PREFECT_API_URL={api_url(host, port)}"
    )
    command = ["prefect", "server", "start", "--host", host, "--port", str(port)]
    try:
        return subprocess.run(command, env=server_env(project), check=False).returncode
    except KeyboardInterrupt:
        return 0


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
