"""The retrain flow's first task when `pacs.url` is set: pull new studies from the PACS into the archive.

Retried (with the flow's backoff) only when the PACS was unreachable or timed out; refused credentials
or AE titles and configuration errors fail at once. After the last retry the run fails with the
PACS's own reason. The task's log gets the pull's one-line summary: counts, no identifiers.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import Task, exponential_backoff

from flows.settings import RetrainParams
from tasks.common.errors import one_line_errors
from tasks.pacs.pull import pull_from_params
from tasks.pacs.settings import load_pacs_settings
from tasks.pacs.transport import PacsUnavailable


def _is_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    return isinstance(state.result(raise_on_failure=False), PacsUnavailable)


@task(
    name="pacs-pull",
    task_run_name="pacs-pull",
    cache_policy=NO_CACHE,
    persist_result=False,
    retry_condition_fn=_is_transient,
)
def pull_task(params: dict[str, Any]) -> str:
    """`radflow pull`: new instances from pacs.url into ingest.source."""
    with one_line_errors():  # a PACS error stays itself (PacsUnavailable decides the retries)
        summary = pull_from_params(params, show_progress=False).describe()
    get_run_logger().info(summary)
    return summary


def pull_first(params: dict[str, Any], settings: RetrainParams) -> None:
    """Run `pull_task` when params.yaml names a PACS (`pacs.url`); otherwise do nothing."""
    if not load_pacs_settings(params).url:  # parsed (and checked) like every other section
        return
    backoff = exponential_backoff(settings.retry_delay_s)
    pull_task.with_options(retries=settings.retries, retry_delay_seconds=backoff)(params)
