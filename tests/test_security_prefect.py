"""Attack: whoever reaches the Prefect API creates a retrain flow run whose overrides name a command and
another PACS (issue #21, item 1). Everything is real: the server on loopback, `radflow serve` serving
the deployment in a tiny DVC project, the flow run created through the API as an attacker would.

The run must be refused before params.yaml changes: the command never runs, then or on a later failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import ObjectNotFound
from prefect.flow_runs import wait_for_flow_run
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.deployment import DEPLOYMENT
from tests.prefect_runs import RUN_TIMEOUT_S, inspect_run, retrain_env
from tests.script_project import make_script_project
from tests.webhook import WebhookReceiver

pytestmark = pytest.mark.slow
SERVE_START_TIMEOUT_S = 300  # `radflow serve` imports the flow (torch, MONAI) on a busy 2-core machine


@contextlib.contextmanager
def serving(project: Path, api_url: str) -> Iterator[subprocess.Popen[str]]:
    """`radflow serve` in `project` (polling for runs every second), stopped with its process group."""
    env = retrain_env(project, api_url, PREFECT_RUNNER_POLL_FREQUENCY="1")
    process = subprocess.Popen(
        ["radflow", "serve", "--cron", "0 2 1 1 *"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def attack(api_url: str, serve: subprocess.Popen[str], overrides: list[str]) -> FlowRun:
    """Once the deployment exists, create a run of it with `overrides` through the API; its final state."""

    async def deployment_id() -> UUID:
        deadline = time.monotonic() + SERVE_START_TIMEOUT_S
        async with get_client() as client:
            while True:  # the deployment appears once `radflow serve` has imported and registered the flow
                assert serve.poll() is None, "radflow serve exited before its deployment appeared"
                assert time.monotonic() < deadline, "radflow serve registered no deployment in time"
                with contextlib.suppress(ObjectNotFound):
                    return (await client.read_deployment_by_name(f"retrain/{DEPLOYMENT}")).id
                await asyncio.sleep(1)

    async def run() -> FlowRun:
        async with get_client() as client:
            created = await client.create_flow_run_from_deployment(
                await deployment_id(), parameters={"overrides": overrides}
            )
        return await wait_for_flow_run(created.id, timeout=RUN_TIMEOUT_S, poll_interval=1)

    with temporary_settings({PREFECT_API_URL: api_url}):
        return asyncio.run(run())


def test_a_run_created_through_the_api_cannot_set_a_command_or_a_pacs(
    prefect_server: str, webhook: WebhookReceiver, tmp_path: Path
) -> None:
    project = make_script_project(tmp_path / "project", retrain={"notify_webhook": webhook.url})
    before = (project / "params.yaml").read_bytes()
    planted = tmp_path / "planted-by-the-attacker"
    overrides = [f"retrain.notify_command=touch {planted}", "pacs.url=dimse://X@127.0.0.1:9"]
    with serving(project, prefect_server) as serve:
        run = attack(prefect_server, serve, overrides)
        events = webhook.wait_for_events(1, timeout_s=RUN_TIMEOUT_S)  # the failure hook runs after the state
    state = run.state
    assert state is not None and state.is_failed(), state
    assert "--set retrain.notify_command: a run may not change it" in str(state.message)
    assert (project / "params.yaml").read_bytes() == before  # nothing was written
    assert not (project / "out").exists()  # no stage ran
    # The failure hook ran, with the operator's settings: the webhook got the event, the command never ran.
    assert [event["event"] for event in events] == ["failure"]
    assert not planted.exists()
    shown = inspect_run(prefect_server, run)
    assert not shown["tasks"], "a refused run starts no task (no pull from the attacker's PACS)"
