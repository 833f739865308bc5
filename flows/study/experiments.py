"""The DVC side of a study: which of its runs are experiments already, queueing the missing ones
(`dvc exp run --queue`), running DVC's queue and waiting for it, and reading a finished run's files.

Every run is an ordinary DVC experiment of the current commit (`dvc exp show` lists it, `dvc exp apply`
restores it). It runs in DVC's temporary workspace up to the evaluate stage (promotion is never part
of a study); `paths.private` (the ingest state and pseudonym salt, ignored by git) is copied in, so
ingest and preprocess are reused from DVC's cache rather than redone with other pseudonyms.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows.study.settings import TARGET, Run, run_params
from tasks.common.errors import RadflowError


@dataclass(frozen=True)
class Experiment:
    """One experiment of the current commit as `dvc exp show --json` reports it."""

    name: str
    rev: str | None  # the experiment's commit once it has one
    state: str  # queued | running | success | failed (DVC's executor state; success for older runs)
    params: dict[str, Any]  # its params.yaml


def dvc(project: Path, *args: str) -> str:
    """Run a dvc command in the project; its output, or its last lines as the error."""
    result = subprocess.run(["dvc", *args], cwd=project, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise RadflowError(f"`dvc {' '.join(args[:3])}` failed: {' '.join(tail)}")
    return result.stdout


def experiments(project: Path) -> dict[str, Experiment]:
    """The current commit's experiments by name (finished, queued, running and failed)."""
    found: dict[str, Experiment] = {}
    for commit in json.loads(dvc(project, "exp", "show", "--json", "--no-fetch")):
        if commit.get("rev") == "workspace":
            continue
        for experiment in commit.get("experiments") or []:
            executor = experiment.get("executor") or {}
            for revision in experiment.get("revs") or []:
                data = revision.get("data") or {}
                params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
                state = executor.get("state") or ("failed" if revision.get("error") else "success")
                rev = revision.get("rev") if state == "success" else None
                found[revision["name"]] = Experiment(revision["name"], rev, state, params)
    return found


def first_difference(expected: Any, actual: Any, where: str = "") -> str | None:
    """The first dotted key whose value differs between two params trees (None when they match)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(set(expected) | set(actual)):
            found = first_difference(expected.get(key), actual.get(key), f"{where}.{key}".lstrip("."))
            if found:
                return found
        return None
    return None if expected == actual else where or "params"


def sort_runs(
    runs: list[Run], study: str, params: dict[str, Any], known: dict[str, Experiment]
) -> tuple[list[Run], list[Run], list[Run], list[Run]]:
    """(finished runs, runs queued or running, failed runs, runs never queued).

    A run's experiment must hold exactly the params it would be given now (the workspace's params.yaml,
    its `study` section aside, plus the run's overrides); one of its name with other settings (params
    or the study edited since) is an error naming the key: reusing it would compare another recipe,
    and removing it is the user's call.
    """
    finished: list[Run] = []
    waiting: list[Run] = []
    failed: list[Run] = []
    missing: list[Run] = []
    for run in runs:
        experiment = known.get(run.name(study))
        if experiment is None:
            missing.append(run)
            continue
        if experiment.state == "failed":
            failed.append(run)
            continue
        expected = {key: value for key, value in run_params(params, run.overrides).items() if key != "study"}
        actual = {key: value for key, value in experiment.params.items() if key != "study"}
        changed = first_difference(expected, actual)
        if changed:
            raise RadflowError(
                f"experiment {experiment.name} was made with another {changed} than the study now gives it: "
                f"`dvc exp remove {experiment.name}` (or `dvc queue remove` it) to run it again"
            )
        (waiting if experiment.state in ("queued", "running") else finished).append(run)
    return finished, waiting, failed, missing


def queue(project: Path, study: str, run: Run, private: Path, *, failed_before: bool) -> None:
    """`dvc exp run --queue` of one run, up to the evaluate stage, in DVC's temporary workspace (a failed
    attempt of the same name is removed from the queue first)."""
    if failed_before:
        dvc(project, "queue", "remove", run.name(study))
    command = ["exp", "run", "--queue", "--name", run.name(study)]
    if (project / private).exists():
        command += ["--copy-paths", str(private)]
    for override in run.overrides:
        command += ["--set-param", override]
    dvc(project, *command, TARGET)


def run_queue(project: Path, names: set[str], jobs: int) -> list[str]:
    """Start `jobs` queue workers (`dvc queue start -j`) and wait until each named experiment is done,
    following its log; returns the names that failed. Other experiments in the queue run too (they
    are the user's), but only these are waited for."""
    from dvc.repo import Repo

    repo = Repo(str(project))
    try:
        celery = repo.experiments.celery_queue
        entries = [entry for entry in [*celery.iter_active(), *celery.iter_queued()] if entry.name in names]
        if not entries:
            return []
        dvc(project, "queue", "start", "--jobs", str(jobs))
        # DVC's own "run the queue and wait": workers started above, then each entry followed to its end.
        repo.experiments.reproduce_celery(entries=entries, jobs=jobs)
    finally:
        repo.close()
    return sorted(
        name for name, found in experiments(project).items() if name in names and found.state != "success"
    )


def read_file(project: Path, rev: str, path: str) -> str:
    """A file as experiment `rev` left it: git-tracked metrics, or a DVC-cached output from the cache."""
    import dvc.api

    return dvc.api.read(path, repo=str(project), rev=rev)
