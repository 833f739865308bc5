"""The `retrain` Prefect flow: the DVC pipeline, one Prefect task per stage, in DVC's order.

DVC decides what is up to date (Prefect result caching is off); Prefect adds what a team needs to run
this weekly: live stage logs, retries for transient failures only, a project lock so runs never
overlap, artifacts in the UI, and failure/promotion notifications.

`--set SECTION.KEY=VALUE` overrides are written into params.yaml (comments kept), exactly as
`dvc exp run -S` does, so that dvc.lock and params.yaml agree after the run and `git diff params.yaml`
shows what was changed; revert with `git checkout params.yaml`. Only training and evaluation knobs may
be overridden, and every section is checked before the file is written (flows.overrides). Errors
inside the run are one line (tasks.common.errors.one_line_errors): its logs go to the Prefect UI.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from prefect import Flow, flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import FlowRun, State, TaskRun
from prefect.states import Completed
from prefect.tasks import Task, exponential_backoff

from flows.artifacts import PROMOTION_KEY, is_promoted, publish_artifacts, read_json, warning_state
from flows.dvc_stages import TransientStageFailure, run_stage, stage_order
from flows.lock import project_lock
from flows.notify import notify
from flows.offline import offline_defaults
from flows.overrides import settable_params
from flows.params_file import write_overrides
from flows.pull import pull_first
from flows.settings import RetrainParams, retrain_params
from flows.summary import compare, snapshot
from flows.sync import SyncReport, sync_incoming
from tasks.common.errors import RadflowError, one_line_errors
from tasks.common.params import PARAMS_FILE, load_params
from tasks.common.paths import project_paths

# Offline by design (docs/DESIGN_NOTES.md): neither the temporary local server nor the client sends
# telemetry.
offline_defaults()
SKIPPED = "Skipped"  # state name of a stage DVC found up to date, and of a run that found the lock busy


def apply_overrides(project: Path, overrides: list[str]) -> dict[str, Any]:
    """Check `overrides` (keys a run may set, every section valid with them), then write them into
    params.yaml like `dvc exp run -S`; return the params. A refused override leaves the file as it was."""
    params = settable_params(project / PARAMS_FILE, overrides)
    if overrides:
        write_overrides(project / PARAMS_FILE, overrides)
    return params


def source_archive(params: dict[str, Any]) -> str:
    """The folder ingest reads (`ingest.source`), where incoming studies are synced to."""
    source = (params.get("ingest") or {}).get("source")
    if not isinstance(source, str):
        raise RadflowError("retrain.incoming is set but params.yaml has no ingest.source folder to sync into")
    return source


def _is_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry only failures a later attempt may not hit (see flows.dvc_stages)."""
    return isinstance(state.result(raise_on_failure=False), TransientStageFailure)


@task(name="sync-incoming", task_run_name="sync-incoming", cache_policy=NO_CACHE, persist_result=False)
def sync_task(incoming: Path, archive: Path, settle_s: float) -> SyncReport:
    """Copy newly arrived studies into the source archive (atomically, counts only in the log)."""
    with one_line_errors():
        report = sync_incoming(incoming, archive, settle_s)
    log = get_run_logger()
    log.info(report.describe())
    if report.skipped:
        log.warning(report.skipped_warning())
    return report


@task(
    name="dvc-stage",
    task_run_name="{stage}",
    cache_policy=NO_CACHE,
    persist_result=False,
    retry_condition_fn=_is_transient,
)
def stage_task(stage: str, project: Path) -> State[Any]:
    """`dvc repro --single-item STAGE`, its output streamed into this task's log."""
    with one_line_errors():
        outcome = run_stage(stage, project, get_run_logger().info)
    if outcome.skipped:  # run_stage has logged DVC's "didn't change, skipping"
        return Completed(name=SKIPPED, message=f"{stage}: up to date", data=SKIPPED)
    return Completed(message=f"{stage}: ran", data="ran")


@task(name="dvc-push", task_run_name="dvc-push", cache_policy=NO_CACHE, persist_result=False)
def push_task(project: Path, remote: str) -> bool:
    """Send this run's data and models to the DVC remote (network: every failure is worth a retry)."""
    with one_line_errors():
        result = subprocess.run(["dvc", "push", "-r", remote], cwd=project, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise RadflowError(
            f"dvc push to remote {remote!r} failed: {lines[-1] if lines else result.returncode}"
        )
    get_run_logger().info("pushed data and models to DVC remote %r", remote)
    return True


def run_stages(stage_run: Task[[str, Path], State[Any]], stages: list[str], project: Path) -> dict[str, str]:
    """Run the stage tasks in order, stopping at the first failure; maps stage -> final state name."""
    results = {}
    for stage in stages:
        state = stage_run(stage, project, return_state=True)
        state.result()  # re-raises the stage's failure, so later stages never run on stale inputs
        results[stage] = str(state.name)
    return results


def _settings_for_hook(project: Path) -> RetrainParams | None:
    try:
        return retrain_params(load_params(project / PARAMS_FILE))
    except RadflowError:
        return None


def _notify_failure(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    """Flow failure hook: send the failure event (the message is the failing stage's own error)."""
    settings = _settings_for_hook(Path.cwd())
    if settings is not None:
        notify(settings, "failure", state.message or "retrain failed", get_run_logger().warning)


@flow(name="retrain", on_failure=[_notify_failure], persist_result=False)
def retrain_flow(overrides: list[str]) -> State[Any] | dict[str, Any]:
    """Sync new studies, run every DVC stage, push, publish artifacts, notify; one run at a time."""
    with one_line_errors():
        return _retrain(Path.cwd(), overrides)


def _retrain(project: Path, overrides: list[str]) -> State[Any] | dict[str, Any]:
    """The flow's body (see retrain_flow); `overrides` are refused before anything else when a run may
    not set them."""
    logger = get_run_logger()
    settings = retrain_params(settable_params(project / PARAMS_FILE, overrides))
    with project_lock(project, settings.lock_wait_s) as held:
        if not held:
            message = (
                f"another retrain run holds the project lock (waited {settings.lock_wait_s:g} s): skipped"
            )
            logger.warning(message)
            return Completed(name=SKIPPED, message=message)
        params = apply_overrides(project, overrides)
        settings, paths = retrain_params(params), project_paths(params)
        pull_first(params, settings)  # new studies from the PACS, when pacs.url is set
        if settings.incoming is not None:
            sync_task(
                project / settings.incoming, project / source_archive(params), settings.incoming_settle_s
            )
        before = snapshot(project)
        promotion_before = read_json(project / paths.promotion / "promotion.json")
        backoff = exponential_backoff(settings.retry_delay_s)
        stage_run = stage_task.with_options(retries=settings.retries, retry_delay_seconds=backoff)
        results = run_stages(stage_run, stage_order(project), project)
        push = push_task.with_options(retries=settings.retries, retry_delay_seconds=backoff)
        pushed = push(project, settings.dvc_remote) if settings.dvc_remote else False
        summary = compare(
            before,
            snapshot(project),
            ran=[stage for stage, result in results.items() if result != SKIPPED],
            skipped=[stage for stage, result in results.items() if result == SKIPPED],
            pushed=pushed,
            params_changed=bool(overrides),
        )
        logger.info("summary:\n%s", summary.markdown())
        promotion = publish_artifacts(project, paths, summary)
        if promotion != promotion_before and is_promoted(promotion):
            notify(
                settings,
                "promotion",
                f"registry version {promotion.get('version')} is the new champion (see {PROMOTION_KEY})",
                logger.warning,
            )
        result = {"ran": summary.ran, "skipped": summary.skipped, "dvc_lock_changed": summary.lock_changed}
        warned = warning_state(project, paths, result)  # a model that did not learn is never silent
        if warned is not None:
            logger.warning("evaluation warnings: %s", warned.message)
        return warned or result
