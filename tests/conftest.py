"""Fixtures shared by several test modules: real servers (Orthanc, Prefect, a webhook receiver) and a
temporary project.

The servers are module-scoped: each module that asks for one gets its own, started once and always
stopped after the module's last test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.defaults import write_params
from tests.loopback import free_port
from tests.orthanc import AUTH, Orthanc, missing_reason, running_orthanc
from tests.prefect_server import background_server
from tests.required import NOT_TESTED, missing, require_import
from tests.webhook import WebhookReceiver

PREFECT_START_TIMEOUT_S = 300  # a loaded 2-core machine can take minutes to migrate a fresh database


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    """A real Orthanc PACS (tests/orthanc.py); where none is installed the test fails under CI and
    `make test`, else is skipped loudly (tests/required.py)."""
    reason = missing_reason()
    if reason is not None:
        missing(reason)
    with running_orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        yield server


@pytest.fixture(scope="module")
def mlflow() -> ModuleType:
    """The radflow[mlflow] extra's client library; missing, it fails or skips as the Orthanc fixture does."""
    return require_import("mlflow", "the radflow[mlflow] extra is not installed (pip install -e '.[mlflow]')")


@pytest.fixture
def pacs(orthanc: Orthanc, monkeypatch: pytest.MonkeyPatch) -> Orthanc:
    """The module's Orthanc, emptied, with radflow's credentials in the environment."""
    orthanc.clear()
    monkeypatch.setenv("RADFLOW_PACS_AUTH", AUTH)
    return orthanc


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prefect server on 127.0.0.1 with its database in tmp; yields its API URL."""
    home = tmp_path_factory.mktemp("prefect-server")
    with background_server(home, "127.0.0.1", free_port(), timeout_s=PREFECT_START_TIMEOUT_S) as url:
        yield url


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    """A running webhook receiver on 127.0.0.1: its `url`, and the `events` POSTed to it."""
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def project_in_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """tmp_path as the project the CLI runs in: its params.yaml (tests.tiny_pipeline.project_params, every
    path under tmp_path) written there and the working directory; returns those params."""
    from tests.tiny_pipeline import project_params  # loads torch: only where this fixture is used

    params = project_params(tmp_path)
    write_params(tmp_path, params)
    monkeypatch.chdir(tmp_path)
    return params


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """End a run that skipped tests for a missing requirement with a banner: a quick loop may skip them,
    but never quietly (under CI and `make test` they fail instead)."""
    untested = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if NOT_TESTED in str(getattr(report, "longrepr", ""))
    ]
    if untested:
        terminalreporter.write_sep(
            "!",
            f"{len(untested)} test(s) NOT TESTED for a missing requirement (see the skip reasons); "
            "CI and `make test` fail on this",
            red=True,
            bold=True,
        )
