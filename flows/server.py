"""The project's Prefect server process (UI + API, data kept in the project), started and stopped whole."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from rich.console import Console

from flows.offline import OFFLINE_ENV
from tasks.common.errors import RadflowError

PREFECT_DIR = ".prefect"  # git-ignored; holds the server's SQLite database and settings
STOP_GRACE_S = 30  # seconds a stopped server gets to shut down before it is killed
AUTH_ENV = "PREFECT_SERVER_API_AUTH_STRING"  # Prefect's own basic auth for its API: "user:password"


def server_env(home: Path) -> dict[str, str]:
    """The environment for a Prefect server whose data lives in `home`, offline."""
    env = {**os.environ, **OFFLINE_ENV, "PREFECT_HOME": str(home.resolve())}
    env.pop("PREFECT_API_URL", None)  # the server serves the API; it must not point at another one
    return env


def loopback(host: str) -> bool:
    """True for an address only this machine reaches: localhost, 127.0.0.0/8, ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def check_exposure(host: str, env: dict[str, str]) -> None:
    """Refuse to serve the API beyond this machine without authentication.

    Anyone who reaches the API can create flow runs, and a run executes commands as the flow's user, so
    a non-loopback `host` needs Prefect's API authentication (`AUTH_ENV` in the server's environment,
    where Prefect gives it precedence over profiles and files).
    """
    user, _, password = env.get(AUTH_ENV, "").partition(":")
    if not loopback(host) and not (user and password):
        raise RadflowError(
            f"--host {host} would let anyone who reaches it run flows, and the Prefect API has no "
            f"authentication: export {AUTH_ENV}=user:password first (clients then set "
            "PREFECT_API_AUTH_STRING to the same), or keep --host 127.0.0.1"
        )


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
    check_exposure(host, server_env(project / PREFECT_DIR))
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
