"""`radflow retrain` end to end against a real Prefect server on loopback and a tiny DVC project.

Everything is real: the server (`prefect server start` with its data in tmp_path), the flow run in a
separate `radflow retrain` process, DVC, git, the webhook receiver. Results are read back through the
Prefect client, the way the UI sees them.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from flows.artifacts import METRICS_KEY, PROMOTION_KEY, REPORT_KEY, SUMMARY_KEY
from tests.prefect_runs import RUN_TIMEOUT_S, finish, flow_runs, inspect_run, new_run, retrain, start_retrain
from tests.project import run_ok
from tests.script_project import STAGES, make_script_project
from tests.webhook import WebhookReceiver

pytestmark = pytest.mark.slow


def test_retrain_runs_each_stage_as_a_task_then_skips_them(
    prefect_server: str, webhook: WebhookReceiver, tmp_path: Path
) -> None:
    project = make_script_project(
        tmp_path / "project",
        retrain={
            "incoming": "incoming",
            "incoming_settle_s": 0,
            "notify_webhook": webhook.url,
            "dvc_remote": "backup",
        },
    )
    run_ok(["dvc", "remote", "add", "backup", str(tmp_path / "dvc-remote")], project)
    (project / "incoming").mkdir()
    (project / "incoming" / "study2.txt").write_text("22")

    seen = flow_runs(prefect_server)
    first = retrain(project, prefect_server)
    assert first.returncode == 0, first.stderr[-3000:]
    assert (project / "raw" / "study2.txt").read_text() == "22"  # synced before the stages ran
    shown = inspect_run(prefect_server, new_run(prefect_server, seen))
    assert shown["state"].is_completed()
    assert set(shown["tasks"]) == {"sync-incoming", *STAGES, "dvc-push"}
    # Every output the run made is in the DVC remote (DVC's own comparison of cache and remote).
    assert "in sync" in run_ok(["dvc", "status", "--cloud", "--remote", "backup"], project)
    assert all(shown["tasks"][stage].state.name == "Completed" for stage in STAGES)
    assert {METRICS_KEY, PROMOTION_KEY, REPORT_KEY, SUMMARY_KEY} <= shown["artifacts"]
    assert "counted 3" in shown["logs"]  # the stage's own output, streamed into the task's log
    assert [event["event"] for event in webhook.events] == ["promotion"]

    seen = flow_runs(prefect_server)
    second = retrain(project, prefect_server)
    assert second.returncode == 0, second.stderr[-3000:]
    shown = inspect_run(prefect_server, new_run(prefect_server, seen))
    assert shown["state"].is_completed()
    assert {stage: shown["tasks"][stage].state.name for stage in STAGES} == dict.fromkeys(STAGES, "Skipped")
    assert len(webhook.events) == 1  # an unchanged decision is not announced again


def test_overlapping_runs_one_runs_the_other_is_skipped(prefect_server: str, tmp_path: Path) -> None:
    project = make_script_project(tmp_path / "project", retrain={"lock_wait_s": 0})
    (project / "hold").touch()  # the gate stage waits for `release` once it has started
    seen = flow_runs(prefect_server)
    first = start_retrain(project, prefect_server)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not (project / "gate_started").exists():
            assert first.poll() is None, first.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "the first run never reached the gate stage"
            time.sleep(0.5)
        second = retrain(project, prefect_server)
    finally:
        (project / "release").touch()
        output = finish(first)
    assert first.returncode == 0, output[-3000:]
    assert second.returncode == 0, second.stderr[-3000:]
    assert "holds the project lock" in second.stdout + second.stderr
    assert (project / "gate_runs.log").read_text() == "ran\n"  # the stages ran exactly once
    runs = [run for run_id, run in flow_runs(prefect_server).items() if run_id not in seen]
    assert sorted(str(run.state_name) for run in runs) == ["Completed", "Skipped"]


def test_deterministic_failure_fails_fast_and_notifies(
    prefect_server: str, webhook: WebhookReceiver, tmp_path: Path
) -> None:
    project = make_script_project(
        tmp_path / "project", retrain={"notify_webhook": webhook.url}, extra=("broken",)
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
    assert [event["event"] for event in webhook.events] == ["failure"]
    assert "step.factor must be positive" in webhook.events[0]["message"]


def test_transient_failure_is_retried(prefect_server: str, tmp_path: Path) -> None:
    project = make_script_project(tmp_path / "project", extra=("flaky",))
    seen = flow_runs(prefect_server)
    result = retrain(project, prefect_server)
    assert result.returncode == 0, result.stderr[-3000:]
    shown = inspect_run(prefect_server, new_run(prefect_server, seen))
    flaky = shown["tasks"]["flaky"]
    assert flaky.state.is_completed() and flaky.run_count == 2
    assert (project / "flaky_attempts.log").read_text() == "try\ntry\n"
