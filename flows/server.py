"""The local Prefect server (UI + API, data kept in the project) and the scheduled retrain deployment."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console

from tasks.common.errors import RadflowError

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
        f"In other shells, point radflow at it:  export PREFECT_API_URL={api_url(host, port)}",
        soft_wrap=True,  # keep the export line copy-pasteable
    )
    command = ["prefect", "server", "start", "--host", host, "--port", str(port)]
    try:
        return subprocess.run(command, env=server_env(project), check=False).returncode
    except KeyboardInterrupt:
        return 0


@contextlib.contextmanager
def background_server(home: Path, host: str, port: int, timeout_s: float = 300) -> Iterator[str]:
    """A Prefect server in the background (data in `home`) for tests, benchmarks and screenshots.

    Yields its PREFECT_API_URL once /api/health answers; always stops it (its whole process group).
    """
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    home.mkdir(parents=True, exist_ok=True)
    url = api_url(host, port)
    with (home / "server.log").open("w") as log:
        server = subprocess.Popen(
            ["prefect", "server", "start", "--host", host, "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it stops its workers too
        )
        try:
            _wait_healthy(url, server, time.monotonic() + timeout_s, home / "server.log")
            yield url
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def _wait_healthy(url: str, server: subprocess.Popen[bytes], deadline: float, log: Path) -> None:
    while True:
        if server.poll() is not None:
            raise RadflowError(f"prefect server exited early; see {log}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RadflowError(f"prefect server did not answer {url}/health in time; see {log}")
        time.sleep(1)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


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
