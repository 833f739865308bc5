"""DVC as the source of truth for the pipeline: its stage order, and running one stage at a time.

The retrain flow never decides what is up to date; it asks DVC stage by stage (`flows.repro_stage`, DVC's
`repro --single-item` in a child process), streams the stage's output line by line, and turns a failure
into one of two exception types by the stage's exit status alone — 75 (EX_TEMPFAIL, a `TransientError`)
is worth a retry, anything else is not — so that Prefect retries only what a retry can fix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import networkx as nx

from tasks.common.errors import DEBUG_ENV, EX_TEMPFAIL, STATUS_ENV, RadflowError

if TYPE_CHECKING:
    from dvc.stage import PipelineStage


class StageFailed(RadflowError):
    """A deterministic stage failure (bad configuration, failed assertion): retrying cannot help."""


class TransientStageFailure(RadflowError):
    """A failure a later attempt may not hit (I/O error, DVC lock held by another process)."""


@dataclass(frozen=True)
class StageOutcome:
    """What one `dvc repro --single-item` did: ran the command, or found the stage up to date."""

    stage: str
    skipped: bool


def stage_order(project: Path) -> list[str]:
    """Pipeline stages in DVC's execution order (dependencies first, ties in dvc.yaml order)."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    try:
        repo = Repo(str(project))
    except NotDvcRepoError:
        raise RadflowError(
            f"{project} is not a DVC project (no .dvc/); run radflow from the project root"
        ) from None
    with repo:
        stages = [stage for stage in repo.index.stages if isinstance(stage, PipelineStage)]
        # DVC's graph points from a stage to the stages it depends on; reverse it to run producers first.
        graph = repo.index.graph.reverse(copy=True)
        position = {stage: i for i, stage in enumerate(stages)}
        ordered = nx.lexicographical_topological_sort(graph, key=lambda s: str(position.get(s, -1)).zfill(6))
        return [_address(stage, project) for stage in ordered if stage in position and not stage.frozen]


def _address(stage: PipelineStage, project: Path) -> str:
    """`name` for the root dvc.yaml, `sub/dvc.yaml:name` otherwise: what `dvc repro` takes from the root."""
    dvcfile = Path(stage.dvcfile.path).resolve()
    if dvcfile == (project / "dvc.yaml").resolve():
        return str(stage.name)
    return f"{dvcfile.relative_to(project.resolve())}:{stage.name}"


def is_up_to_date(stage: str, project: Path) -> bool:
    """DVC's own verdict (`dvc status`) on one stage, asked in-process: a no-op run then costs no
    `dvc` process start per stage. Anything else (changed, missing outputs) goes to `dvc repro`."""
    from dvc.lock import LockError
    from dvc.repo import Repo

    # DVC resolves targets against the current directory, so name the dvc.yaml absolutely.
    target = str(project / stage) if ":" in stage else f"{project / 'dvc.yaml'}:{stage}"
    try:
        with Repo(str(project)) as repo:
            return not repo.status(targets=[target], with_deps=False)
    except LockError as error:
        raise TransientStageFailure(f"stage {stage!r}: {error}") from None


def run_stage(stage: str, project: Path, log: Callable[[str], None]) -> StageOutcome:
    """Reproduce one stage unless DVC says it is up to date, passing each output line to `log` as it
    arrives.

    Raises TransientStageFailure (exit status 75) or StageFailed, whose message is the stage's own error.
    """
    if is_up_to_date(stage, project):
        log(f"Stage '{stage}' didn't change, skipping (dvc status)")
        return StageOutcome(stage=stage, skipped=True)
    log(f"Running stage '{stage}'")
    with tempfile.TemporaryDirectory(prefix="radflow-stage-") as scratch:
        status_file = Path(scratch) / "status.json"
        # Wide COLUMNS keeps rich from wrapping a stage's one-line error message across several lines.
        # No RADFLOW_DEBUG: a stage's output goes to the Prefect logs, where no traceback belongs.
        env = {**os.environ, "COLUMNS": "1000", "PYTHONUNBUFFERED": "1", STATUS_ENV: str(status_file)}
        env.pop(DEBUG_ENV, None)
        last_line = ""
        with subprocess.Popen(
            [sys.executable, "-m", "flows.repro_stage", stage],
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env=env,
        ) as process:
            assert process.stdout is not None  # set by stdout=PIPE
            for raw in process.stdout:
                line = raw.rstrip()
                if line:
                    last_line = line
                    log(line)
        verdict = read_verdict(status_file)
    if process.returncode == 0:
        return StageOutcome(stage=stage, skipped=verdict.get("outcome") == "skipped")
    # Without a verdict the reproducer itself died (killed, out of memory): its last words say why.
    message = f"stage {stage!r} failed: {verdict.get('error') or last_line or process.returncode}"
    if process.returncode == EX_TEMPFAIL:
        raise TransientStageFailure(message)
    raise StageFailed(message)


def read_verdict(status_file: Path) -> dict[str, object]:
    """flows.repro_stage's JSON verdict; empty when it never got to write one."""
    try:
        verdict: dict[str, object] = json.loads(status_file.read_text())
    except (OSError, ValueError):
        return {}
    return verdict
