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
from typing import Any

from rich.console import Console

from tasks.common.errors import RadflowError

PREFECT_DIR = ".prefect"  # git-ignored; holds the server's SQLite database and settings
DEPLOYMENT = "weekly-retrain"


# Hospital networks are offline: neither the server nor a client may try to phone home (DVC's usage
# analytics included: the dvc commands a flow runs would each fork a daemon trying to send a report).
OFFLINE_ENV = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "DVC_NO_ANALYTICS": "1"}
STOP_GRACE_S = 30  # seconds a stopped server gets to shut down before it is killed


def offline_defaults() -> None:
    """Make this process (and the servers and flows it starts) offline unless told otherwise."""
    for name, value in OFFLINE_ENV.items():
        os.environ.setdefault(name, value)


def server_env(home: Path) -> dict[str, str]:
    """The environment for a Prefect server whose data lives in `home`, offline."""
    env = {**os.environ, **OFFLINE_ENV, "PREFECT_HOME": str(home.resolve())}
    env.pop("PREFECT_API_URL", None)  # the server serves the API; it must not point at another one
    return env


def api_url(host: str, port: int) -> str:
    """What clients set as PREFECT_API_URL to talk to that server."""
    return f"http://{host}:{port}/api"


def start_server(home: Path, host: str, port: int, **popen: Any) -> subprocess.Popen[bytes]:
    """`prefect server start` in its own process group, so stopping it stops its workers too."""
    home.mkdir(parents=True, exist_ok=True)
    command = ["prefect", "server", "start", "--host", host, "--port", str(port)]
    return subprocess.Popen(command, env=server_env(home), start_new_session=True, **popen)


def stop_server(server: subprocess.Popen[bytes], signum: int = signal.SIGTERM) -> None:
    """Send `signum` to the server's whole process group, wait, and kill what is left after the grace."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signum)
    try:
        server.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def run_server(project: Path, host: str, port: int, console: Console) -> int:
    """Run the project's Prefect server in the foreground until Ctrl-C or SIGTERM; returns its status.

    The server runs in its own process group, so a signal to radflow alone would leave it serving:
    SIGINT and SIGTERM are passed on to its group, and radflow returns only once it has stopped.
    """
    console.print(
        f"Prefect UI: http://{host}:{port}   (data in {project / PREFECT_DIR})\n"
        f"In other shells, point radflow at it:  export PREFECT_API_URL={api_url(host, port)}",
        soft_wrap=True,  # keep the export line copy-pasteable
    )
    server = start_server(project / PREFECT_DIR, host, port)
    stopping: list[int] = []

    def pass_on(signum: int, _frame: object) -> None:
        stopping.append(signum)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signum)

    previous = {sig: signal.signal(sig, pass_on) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        status = server.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if server.poll() is None:
            stop_server(server)
    return 0 if stopping else status


@contextlib.contextmanager
def background_server(home: Path, host: str, port: int, timeout_s: float = 300) -> Iterator[str]:
    """A Prefect server in the background (data in `home`) for tests, benchmarks and screenshots.

    Yields its PREFECT_API_URL once /api/health answers; always stops it (its whole process group).
    """
    url = api_url(host, port)
    home.mkdir(parents=True, exist_ok=True)
    with (home / "server.log").open("w") as log:
        server = start_server(home, host, port, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_healthy(url, server, time.monotonic() + timeout_s, home / "server.log")
            yield url
        finally:
            stop_server(server)


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
