"""`radflow server`: a SIGTERM to radflow stops the Prefect server it started; nothing is left listening."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

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


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_radflow_server_stops_the_prefect_server(tmp_path: Path, signum: int) -> None:
    port = free_port()
    radflow = subprocess.Popen(
        ["radflow", "server", "--port", str(port)],
        cwd=tmp_path,
        env=tool_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not answers(f"http://127.0.0.1:{port}/api/health"):
            assert radflow.poll() is None, "radflow server exited before its server answered"
            assert time.monotonic() < deadline, "the Prefect server did not start in time"
            time.sleep(1)
        radflow.send_signal(signum)
        assert radflow.wait(timeout=60) == 0
        assert not listening(port), f"something still serves port {port} after radflow server stopped"
    finally:
        if radflow.poll() is None:
            os.kill(radflow.pid, signal.SIGKILL)
            radflow.wait()
