"""`radflow retrain` end to end against a real Prefect server on loopback and a tiny DVC project.

Everything is real: the server (`prefect server start` with its data in tmp_path), the flow run in a
separate `radflow retrain` process, DVC, git, the webhook receiver. Results are read back through the
Prefect client, the way the UI sees them.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import FlowRunSort, LogSort, TaskRunSort
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.artifacts import METRICS_KEY, PROMOTION_KEY, REPORT_KEY, SUMMARY_KEY
from flows.server import background_server, free_port
from tests.test_notify import WebhookReceiver
from tests.test_retrain import STAGES, make_project

pytestmark = pytest.mark.slow

SERVER_START_TIMEOUT_S = 300  # a loaded 2-core machine can take minutes to migrate a fresh database
RUN_TIMEOUT_S = 400


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prefect server on 127.0.0.1 with its database in tmp; always stopped afterwards."""
    home = tmp_path_factory.mktemp("prefect-server")
    with background_server(home, "127.0.0.1", free_port(), timeout_s=SERVER_START_TIMEOUT_S) as url:
        yield url


def client_env(api_url: str, home: Path) -> dict[str, str]:
    return {**os.environ, "PREFECT_API_URL": api_url, "PREFECT_HOME": str(home), "COLUMNS": "200"}


def retrain(project: Path, api_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """One `radflow retrain` process, as a user or the scheduler would start it."""
    return subprocess.run(
        ["radflow", "retrain", *args],
        cwd=project,
        env=client_env(api_url, project.parent / "prefect-client"),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )


def flow_runs(api_url: str) -> dict[UUID, FlowRun]:
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
    """What the UI shows for a flow run: its state, task runs, artifact keys and log messages."""

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
                "logs": [log.message for log in logs],
            }

    with temporary_settings({PREFECT_API_URL: api_url}):
        return asyncio.run(read())


def test_retrain_runs_each_stage_as_a_task_then_skips_them(prefect_server: str, tmp_path: Path) -> None:
    with WebhookReceiver() as receiver:
        project = make_project(
            tmp_path / "project",
            retrain={
                "incoming": "incoming",
                "incoming_settle_s": 0,
                "notify_webhook": receiver.url,
                "dvc_remote": "backup",
            },
        )
        remote = tmp_path / "dvc-remote"
        subprocess.run(["dvc", "remote", "add", "backup", str(remote)], cwd=project, check=True)
        (project / "incoming").mkdir()
        (project / "incoming" / "study2.txt").write_text("22")

        seen = flow_runs(prefect_server)
        first = retrain(project, prefect_server)
        assert first.returncode == 0, first.stderr[-3000:]
        assert (project / "raw" / "study2.txt").read_text() == "22"  # synced before the stages ran
        shown = inspect_run(prefect_server, new_run(prefect_server, seen))
        assert shown["state"].is_completed()
        assert set(shown["tasks"]) == {"sync-incoming", *STAGES, "dvc-push"}
        assert any(path.is_file() for path in remote.rglob("*"))  # outputs pushed to the DVC remote
        assert all(shown["tasks"][stage].state.name == "Completed" for stage in STAGES)
        assert {METRICS_KEY, PROMOTION_KEY, REPORT_KEY, SUMMARY_KEY} <= shown["artifacts"]
        assert "counted 3" in shown["logs"]  # the stage's own output, streamed into the task's log
        assert [event["event"] for event in receiver.events] == ["promotion"]

        seen = flow_runs(prefect_server)
        second = retrain(project, prefect_server)
        assert second.returncode == 0, second.stderr[-3000:]
        shown = inspect_run(prefect_server, new_run(prefect_server, seen))
        assert shown["state"].is_completed()
        assert {stage: shown["tasks"][stage].state.name for stage in STAGES} == dict.fromkeys(
            STAGES, "Skipped"
        )
        assert len(receiver.events) == 1  # an unchanged decision is not announced again


def test_overlapping_runs_one_runs_the_other_is_skipped(prefect_server: str, tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", retrain={"lock_wait_s": 0})
    (project / "hold").touch()  # the gate stage waits for `release` once it has started
    seen = flow_runs(prefect_server)
    first = subprocess.Popen(
        ["radflow", "retrain"],
        cwd=project,
        env=client_env(prefect_server, tmp_path / "prefect-client"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not (project / "gate_started").exists():
            assert first.poll() is None, first.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "the first run never reached the gate stage"
            time.sleep(0.5)
        second = retrain(project, prefect_server)
    finally:
        (project / "release").touch()
        output = first.communicate(timeout=RUN_TIMEOUT_S)[0]
    assert first.returncode == 0, output[-3000:]
    assert second.returncode == 0, second.stderr[-3000:]
    assert "holds the project lock" in second.stdout + second.stderr
    assert (project / "gate_runs.log").read_text() == "ran\n"  # the stages ran exactly once
    runs = [run for run_id, run in flow_runs(prefect_server).items() if run_id not in seen]
    assert sorted(str(run.state_name) for run in runs) == ["Completed", "Skipped"]


def test_deterministic_failure_fails_fast_and_notifies(prefect_server: str, tmp_path: Path) -> None:
    with WebhookReceiver() as receiver:
        project = make_project(
            tmp_path / "project", retrain={"notify_webhook": receiver.url}, extra=("broken",)
        )
        seen = flow_runs(prefect_server)
        result = retrain(project, prefect_server)
        assert result.returncode == 1
        assert "error: stage 'broken' failed: step.factor must be positive; got -1" in result.stderr
        assert "Traceback" not in result.stderr.split("error: stage")[-1]
        shown = inspect_run(prefect_server, new_run(prefect_server, seen))
        assert shown["state"].is_failed()
        broken = shown["tasks"]["broken"]
        assert broken.state.is_failed() and broken.run_count == 1  # no retry for a deterministic error
        assert "step.factor must be positive" in str(broken.state.message)
        assert [event["event"] for event in receiver.events] == ["failure"]
        assert "step.factor must be positive" in receiver.events[0]["message"]


def test_transient_failure_is_retried(prefect_server: str, tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", extra=("flaky",))
    seen = flow_runs(prefect_server)
    result = retrain(project, prefect_server)
    assert result.returncode == 0, result.stderr[-3000:]
    shown = inspect_run(prefect_server, new_run(prefect_server, seen))
    flaky = shown["tasks"]["flaky"]
    assert flaky.state.is_completed() and flaky.run_count == 2
    assert (project / "flaky_attempts.log").read_text() == "try\ntry\n"
