"""`radflow server`: a SIGTERM to radflow stops the Prefect server it started; nothing is left listening. It
serves beyond loopback only with Prefect's API authentication, which then refuses anonymous API calls."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.server import AUTH_ENV, check_exposure, loopback
from tasks.common.errors import RadflowError
from tests.loopback import free_port
from tests.project import tool_env

START_TIMEOUT_S = 240  # a cold `prefect server start` on a busy 2-core machine


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def radflow_server(cwd: Path, port: int, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """`radflow server --port PORT` (127.0.0.1), yielded once /api/health answers; killed if still running."""
    radflow = subprocess.Popen(
        ["radflow", "server", "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not answers(f"http://127.0.0.1:{port}/api/health"):
            assert radflow.poll() is None, "radflow server exited before its server answered"
            assert time.monotonic() < deadline, "the Prefect server did not start in time"
            time.sleep(1)
        yield radflow
    finally:
        if radflow.poll() is None:
            os.kill(radflow.pid, signal.SIGKILL)
            radflow.wait()


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_radflow_server_stops_the_prefect_server(tmp_path: Path, signum: int) -> None:
    port = free_port()
    with radflow_server(tmp_path, port, tool_env()) as radflow:
        radflow.send_signal(signum)
        assert radflow.wait(timeout=60) == 0
        assert not listening(port), f"something still serves port {port} after radflow server stopped"


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("pacs.hospital", False),
    ],
)
def test_loopback_hosts(host: str, local: bool) -> None:
    assert loopback(host) is local
    check_exposure(host, {AUTH_ENV: "radflow:s3cret"})  # any host, once the API asks for credentials


@pytest.mark.parametrize("auth", [None, "", "radflow", "radflow:", ":s3cret"])
def test_a_non_loopback_host_without_api_authentication_is_refused(tmp_path: Path, auth: str | None) -> None:
    """Refused before anything is started or written, in one line that says how to serve it safely."""
    with pytest.raises(RadflowError, match=AUTH_ENV):
        check_exposure("0.0.0.0", {} if auth is None else {AUTH_ENV: auth})
    if auth is None:  # the command as a user runs it
        env = {key: value for key, value in tool_env().items() if key != AUTH_ENV}
        port = free_port()
        result = subprocess.run(
            ["radflow", "server", "--host", "0.0.0.0", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 1
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and f"export {AUTH_ENV}=user:password" in lines[0], result.stderr
        assert not listening(port) and not (tmp_path / ".prefect").exists()


def api_status(port: int, headers: dict[str, str]) -> int:
    """The status of an API call that reads flow runs (what the UI and any client does first)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/flow_runs/filter",
        data=b"{}",
        method="POST",
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.slow
def test_with_api_authentication_the_server_refuses_anonymous_calls(tmp_path: Path) -> None:
    port = free_port()
    with radflow_server(tmp_path, port, tool_env() | {AUTH_ENV: "radflow:s3cret"}) as radflow:
        good = base64.b64encode(b"radflow:s3cret").decode()
        bad = base64.b64encode(b"radflow:guess").decode()
        assert api_status(port, {}) == 401
        assert api_status(port, {"Authorization": f"Basic {bad}"}) == 401
        assert api_status(port, {"Authorization": f"Basic {good}"}) == 200
        radflow.send_signal(signal.SIGTERM)
        assert radflow.wait(timeout=60) == 0
