"""`radflow study [NAME]`: plan the study's runs, reuse the finished ones, queue and run the rest through
DVC's queue, then compare them and write the results. A killed study resumes: only runs that are not
experiments yet are queued (runs still queued or running are waited for)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from flows.study import experiments as dvc_exps
from flows.study.collect import align, read_run
from flows.study.compare import compare
from flows.study.outputs import sentence, write_study
from flows.study.settings import parse_study_section, pick_study, plan_runs
from tasks.common.errors import RadflowError
from tasks.common.paths import project_paths


def run_study(params: dict[str, Any], name: str | None, project: Path, say: Callable[[str], None]) -> Path:
    """Run (or resume) one study and write its outputs; returns their folder."""
    settings = parse_study_section(params)
    study_name, study = pick_study(settings, name)
    runs = plan_runs(study_name, study, params)
    paths = project_paths(params)
    if not (project / "dvc.lock").exists():
        raise RadflowError("no dvc.lock: run the pipeline once (`dvc repro evaluate`) and commit it first")
    known = dvc_exps.experiments(project)
    finished, waiting, failed, missing = dvc_exps.sort_runs(runs, study_name, params, known)
    say(
        f"study {study_name}: {len(runs)} runs ({len(study.variants)} variants x {len(study.seeds)} seeds); "
        f"{len(finished)} finished already, {len(waiting)} queued or running, "
        f"{len(failed) + len(missing)} to queue"
    )
    for run in [*failed, *missing]:
        dvc_exps.queue(project, study_name, run, paths.private, failed_before=run in failed)
    pending = {run.name(study_name) for run in [*waiting, *failed, *missing]}
    broken = dvc_exps.run_queue(project, pending, settings.jobs) if pending else []
    if broken:
        raise RadflowError(
            f"study {study_name}: {len(broken)} run(s) failed: {', '.join(broken)} "
            "(`dvc queue logs NAME` shows why; `radflow study` again reruns only those)"
        )
    known = dvc_exps.experiments(project)
    revs = {run.name(study_name): known[run.name(study_name)].rev or "" for run in runs}
    outputs = [
        read_run(
            lambda rev, path: dvc_exps.read_file(project, rev, path),
            revs[run.name(study_name)],
            run,
            str(paths.evaluation),
            str(paths.model),
        )
        for run in runs
    ]
    variants = list(study.variants)
    data = align(outputs, variants, study.seeds)
    comparison = compare(
        data, variants, study.reference, study.metric, settings.bootstrap_samples, int(params["seed"])
    )
    folder = settings.folder / study_name
    write_study(project / folder, study_name, comparison, data, revs)
    for row in comparison.rows:
        say(sentence(row, comparison))
    say(f"study {study_name}: {folder}/study.html, table.md, study.json; `dvc plots show` draws its plots")
    return folder
