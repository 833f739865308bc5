"""A real Prefect server in the background, for tests and benchmarks."""

from __future__ import annotations

import contextlib
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from flows.server import api_url, start_server, stop_server
from tasks.common.errors import RadflowError


@contextlib.contextmanager
def background_server(home: Path, host: str, port: int, timeout_s: float = 300) -> Iterator[str]:
    """A Prefect server in the background (data in `home`) for tests and benchmarks.

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
