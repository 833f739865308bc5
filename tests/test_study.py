"""`radflow study` end to end (issue 24): a tiny two-variant, two-seed study through DVC's own queue in a
throwaway project. The twin variant changes only evaluate.batch_size ("no effect on results"), so it is
the reference compared with itself: its paired interval, computed on the same test patients, must hold
zero. A second `radflow study` reruns nothing; after one experiment is removed, only that one reruns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dvc.api
import pandas as pd
import pytest

from tests.project import SMALL_DEMO, make_project, run_ok

pytestmark = pytest.mark.slow

TINY_STUDY = (
    "study.studies={tiny: {reference: base, metric: roc_auc, seeds: [3, 4], common: [train.epochs=1], "
    "variants: {base: [], twin: [evaluate.batch_size=16]}}}",
    "study.default=tiny",
    "study.bootstrap_samples=200",
)
NAMES = sorted(f"tiny-{variant}-s{seed}" for variant in ("base", "twin") for seed in (3, 4))
PREDICTIONS = "data/evaluation/report/test_predictions.csv"

Study = tuple[Path, str, dict[str, Any]]


def experiment_revs(project: Path) -> dict[str, str]:
    """The finished experiments of HEAD that `dvc exp show` lists: name -> commit."""
    shown = json.loads(run_ok(["dvc", "exp", "show", "--json", "--no-fetch"], project, timeout=300))
    return {
        revision["name"]: revision["rev"]
        for commit in shown
        for experiment in commit.get("experiments") or []
        for revision in experiment["revs"]
        if not revision.get("error")
    }


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    """A committed tiny project after `radflow study` (no NAME: study.default); returns the project, the
    command's output and the study's study.json."""
    project = make_project(tmp_path_factory.mktemp("study"), overrides=(*SMALL_DEMO, *TINY_STUDY))
    run_ok(["dvc", "repro", "evaluate"], project)
    run_ok(["git", "add", "-A"], project)
    run_ok(["git", "commit", "-qm", "baseline"], project)
    output = run_ok(["radflow", "study"], project)
    return project, output, json.loads((project / "data/study/tiny/study.json").read_text())


def test_every_run_is_an_ordinary_experiment_up_to_evaluate(study: Study) -> None:
    project, output, record = study
    assert "0 finished already, 0 queued or running, 4 to queue" in output
    revs = experiment_revs(project)
    assert set(NAMES) <= set(revs), sorted(revs)
    assert record["experiments"] == {name: revs[name] for name in NAMES}
    for name in NAMES:
        seed = int(name.rsplit("-s", 1)[1])
        shown = dvc.api.params_show(repo=str(project), rev=revs[name])
        assert shown["train"]["seed"] == seed and shown["train"]["epochs"] == 1
        assert shown["evaluate"]["batch_size"] == (16 if "twin" in name else 64)
    assert not (project / "registry").exists()  # a study promotes nothing


def test_runs_are_tested_on_the_same_patients_and_seeds_vary_training_only(study: Study) -> None:
    project, _, record = study
    frames = {
        name: pd.read_csv(
            pd.io.common.StringIO(
                dvc.api.read(PREDICTIONS, repo=str(project), rev=record["experiments"][name])
            )
        ).sort_values("image_id")
        for name in NAMES
    }
    first = frames[NAMES[0]]
    for frame in frames.values():
        assert frame["image_id"].tolist() == first["image_id"].tolist()
        assert frame["patient_id"].tolist() == first["patient_id"].tolist()
    logits = [column for column in first.columns if column.startswith("logit_")]
    seed_3, seed_4 = (frames[f"tiny-base-s{seed}"][logits].to_numpy() for seed in (3, 4))
    assert (seed_3 != seed_4).any()  # another train.seed trained another network


def test_the_reference_against_itself_is_indistinguishable(study: Study) -> None:
    _, output, record = study
    rows = {row["variant"]: row for row in record["rows"]}
    twin = rows["twin"]["difference"]
    assert twin["low"] <= 0 <= twin["high"], twin
    assert abs(twin["estimate"]) < 1e-6 and twin["high"] - twin["low"] < 1e-6, twin
    assert twin["verdict"] == "indistinguishable"
    assert "twin is indistinguishable from base (the interval includes zero)" in output
    assert rows["base"]["difference"] is None
    for row in rows.values():
        assert 0 <= row["score"]["mean"] <= 1 and len(row["score"]["per_seed"]) == 2
        assert row["cost"]["parameters"] > 0 and row["cost"]["train_seconds_per_image"] > 0
        assert row["cost"]["inference_seconds_per_image"] > 0 and row["cost"]["peak_memory_mb"] > 0


def test_page_table_plots_and_dvc_plots(study: Study) -> None:
    project, _, _ = study
    folder = project / "data/study/tiny"
    for name in ("study.html", "table.md", "forest.png", "roc.png", "differences.csv", "roc/base.csv"):
        assert (folder / name).stat().st_size > 0, name
    table = (folder / "table.md").read_text()
    assert "| twin |" in table and "Bonferroni" in table
    plots = json.loads(run_ok(["dvc", "plots", "show", "--json"], project, timeout=300))["data"]
    assert "tiny: ROC of every variant" in plots and "data/study/tiny/forest.png" in plots, sorted(plots)


def test_a_resumed_study_reruns_nothing_finished(study: Study) -> None:
    project, _, record = study
    before = experiment_revs(project)
    again = run_ok(["radflow", "study", "tiny"], project)
    assert "4 finished already, 0 queued or running, 0 to queue" in again
    assert experiment_revs(project) == before
    # A study killed before its last run: only that run is queued and run again.
    run_ok(["dvc", "exp", "remove", "tiny-twin-s4"], project)
    resumed = run_ok(["radflow", "study", "tiny"], project)
    assert "3 finished already, 0 queued or running, 1 to queue" in resumed
    after = experiment_revs(project)
    assert {name: after[name] for name in NAMES if name != "tiny-twin-s4"} == {
        name: before[name] for name in NAMES if name != "tiny-twin-s4"
    }
    assert after["tiny-twin-s4"] != record["experiments"]["tiny-twin-s4"]
