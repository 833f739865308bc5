"""`radflow retrain` processes against a test Prefect server, and what the server recorded of them.

Results are read back through the Prefect client, the way the UI sees them.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import FlowRunSort, LogSort, TaskRunSort
from prefect.settings import PREFECT_API_URL, temporary_settings

from tests.project import tool_env

RUN_TIMEOUT_S = 900  # one retrain of the small real pipeline on a busy 2-core machine


def retrain_env(project: Path, api_url: str, **extra: str) -> dict[str, str]:
    """The environment of a retrain process: the server to report to, a Prefect client home beside the
    project, wide lines (DVC's "Running stage" lines stay whole in Prefect's log), plus `extra`."""
    home = str(project.parent / "prefect-client")
    return tool_env() | {"PREFECT_API_URL": api_url, "PREFECT_HOME": home, "COLUMNS": "200"} | extra


def retrain(project: Path, api_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """One `radflow retrain` process, as a user or the scheduler would start it; waits for it."""
    return subprocess.run(
        ["radflow", "retrain", *args],
        cwd=project,
        env=retrain_env(project, api_url, **env),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def start_retrain(project: Path, api_url: str) -> subprocess.Popen[str]:
    """A `radflow retrain` process left running, its output (stdout and stderr merged) in a pipe."""
    return subprocess.Popen(
        ["radflow", "retrain"],
        cwd=project,
        env=retrain_env(project, api_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> str:
    """Wait for a started retrain process (killed past RUN_TIMEOUT_S); returns its output."""
    try:
        return process.communicate(timeout=RUN_TIMEOUT_S)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()[0]


def flow_runs(api_url: str) -> dict[UUID, FlowRun]:
    """Every flow run the server knows, by id."""

    async def read() -> list[FlowRun]:
        async with get_client() as client:
            return await client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=200)

    with temporary_settings({PREFECT_API_URL: api_url}):
        return {run.id: run for run in asyncio.run(read())}


def new_run(api_url: str, seen: dict[UUID, FlowRun]) -> FlowRun:
    """The one flow run created since `seen` was taken."""
    (run,) = [run for run_id, run in flow_runs(api_url).items() if run_id not in seen]
    return run


def inspect_run(api_url: str, run: FlowRun) -> dict[str, Any]:
    """What the UI shows for a flow run: its state, task runs, artifact keys (and each one's content,
    `artifact_data`) and log messages."""

    async def read() -> dict[str, Any]:
        async with get_client() as client:
            # Explicit sort/limit/offset: this server version rejects the client's null defaults.
            tasks = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])),
                sort=TaskRunSort.EXPECTED_START_TIME_ASC,
                limit=200,
            )
            # The artifacts endpoint rejects null filters and joins task runs for an empty one, which
            # hides flow-level artifacts; so this one query goes to the REST API the client wraps.
            response = await client._client.post(
                "/artifacts/filter",
                json={"artifacts": {"flow_run_id": {"any_": [str(run.id)]}}, "limit": 200},
            )
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])),
                sort=LogSort.TIMESTAMP_ASC,
                limit=200,
                offset=0,
            )
            return {
                "state": (await client.read_flow_run(run.id)).state,
                "tasks": {task_run.name: task_run for task_run in tasks},
                "artifacts": {artifact["key"] for artifact in response.json()},
                "artifact_data": {artifact["key"]: artifact["data"] for artifact in response.json()},
                "logs": [log.message for log in logs],
            }

    with temporary_settings({PREFECT_API_URL: api_url}):
        return asyncio.run(read())
