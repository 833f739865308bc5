"""DVC as the source of truth for the pipeline: its stage order, and running one stage at a time.

The retrain flow never decides what is up to date; it asks DVC (`dvc repro --single-item`) stage by
stage, streams the stage's output line by line, and turns a failure into one of two exception types so
that Prefect retries only what a retry can fix.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import networkx as nx

from tasks.common.errors import RadflowError

if TYPE_CHECKING:
    from dvc.stage import PipelineStage

# Exit status a stage command uses to say "try again later" (sysexits.h EX_TEMPFAIL).
EX_TEMPFAIL = 75
# Output that marks a failure a retry can fix: another DVC process holds the repo lock, or I/O flaked.
TRANSIENT_PATTERNS = re.compile(
    r"Unable to acquire lock|Resource temporarily unavailable|Input/output error|Stale file handle"
    r"|Connection (reset|refused|aborted)|timed out|Temporary failure",
    re.IGNORECASE,
)
# The line a stage prints for its own failure: radflow's CLI `error: ...`, or a Python exception line.
STAGE_ERROR_LINE = re.compile(r"^(error: .+|[A-Za-z_.]*(Error|Exception|Exit)\b.*)$")
SKIPPED_LINE = "didn't change, skipping"


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
    """Run `dvc repro --single-item STAGE` unless DVC says the stage is up to date, passing each
    output line to `log` as it arrives.

    Raises TransientStageFailure or StageFailed, whose message is the stage's own error line.
    """
    if is_up_to_date(stage, project):
        log(f"Stage '{stage}' didn't change, skipping (dvc status)")
        return StageOutcome(stage=stage, skipped=True)
    # Wide COLUMNS keeps rich from wrapping a stage's one-line error message across several lines.
    env = {**os.environ, "COLUMNS": "1000", "PYTHONUNBUFFERED": "1"}
    lines: list[str] = []
    with subprocess.Popen(
        ["dvc", "repro", "--single-item", stage],
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
                lines.append(line)
                log(line)
    if process.returncode == 0:
        skipped = any(SKIPPED_LINE in line for line in lines) and not any(
            line.startswith("Running stage") for line in lines
        )
        return StageOutcome(stage=stage, skipped=skipped)
    raise classify_failure(stage, process.returncode, lines)


def classify_failure(stage: str, returncode: int, lines: list[str]) -> RadflowError:
    """Turn a failed `dvc repro` into a transient or deterministic error carrying the stage's message."""
    message = f"stage {stage!r} failed: {failure_message(returncode, lines)}"
    stage_exit = re.search(r"exited with (\d+)", "\n".join(lines))
    transient = (stage_exit is not None and int(stage_exit.group(1)) == EX_TEMPFAIL) or any(
        TRANSIENT_PATTERNS.search(line) for line in lines
    )
    return TransientStageFailure(message) if transient else StageFailed(message)


def failure_message(returncode: int, lines: list[str]) -> str:
    """The most specific line: the stage's own error, else DVC's ERROR line, else the exit status."""
    own = [line for line in lines if STAGE_ERROR_LINE.match(line)]
    if own:
        return own[-1].removeprefix("error: ")
    dvc_errors = [line for line in lines if line.startswith("ERROR:")]
    if dvc_errors:
        return dvc_errors[-1].removeprefix("ERROR: ")
    return f"dvc repro exited with status {returncode}"
