"""The study's statistics and planning, fast (issue 24): paired patient bootstrap, the reference against
itself, clear winners and losers, the Bonferroni level, refusing runs on other test patients, and the
runs a study plan makes from params.yaml."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flows.study.collect import RunOutputs, StudyData, align
from flows.study.compare import compare
from flows.study.experiments import Experiment, sort_runs
from flows.study.outputs import markdown_table
from flows.study.settings import Run, parse_study_section, pick_study, plan_runs, run_params
from flows.study.stats import bonferroni_level, draw, paired_difference, per_draw
from tasks.common.errors import RadflowError
from tasks.common.metrics import roc_auc
from tests.defaults import repo_params

CLASSES = ["abnormal", "normal"]


def synthetic(patients: int = 40, seeds: int = 2, seed: int = 0) -> StudyData:
    """Two images per patient; 'good' separates the classes, 'noise' does not, 'good_too' is 'good'
    plus a little noise; logits (S, N, 2)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(patients) % 2, 2)
    data = StudyData(
        classes=CLASSES,
        negative_index=1,
        image_ids=np.array([f"i{k:03d}" for k in range(2 * patients)]),
        patients=np.repeat([f"p{k:03d}" for k in range(patients)], 2),
        labels=labels,
        seeds=list(range(seeds)),
    )
    signal = np.where(labels == 0, 1.5, -1.5)
    for name, strength in (("good", 1.0), ("noise", 0.0), ("good_too", 1.0)):
        runs = []
        for _ in range(seeds):
            score = strength * signal + rng.normal(0, 1, len(labels))
            runs.append(np.stack([score, np.zeros_like(score)], axis=1))
        data.logits[name] = np.stack(runs)
    return data


def test_draws_take_whole_patients_and_are_shared() -> None:
    patients = np.array(["a", "a", "b", "c", "c", "c"])
    draws = draw(patients, n_seeds=3, samples=50, seed=1)
    assert len(draws.rows) == 50 and draws.seeds.shape == (50, 3)
    for rows in draws.rows:
        counts = pd.Series(patients[rows]).value_counts()
        sizes = pd.Series(patients).value_counts()
        assert all(counts[p] % sizes[p] == 0 for p in counts.index)  # a patient comes with all its images
        assert sum(counts[p] // sizes[p] for p in counts.index) == 3  # three patients drawn
    again = draw(patients, n_seeds=3, samples=50, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(draws.rows, again.rows, strict=True))


def test_a_variant_against_itself_is_exactly_zero() -> None:
    data = synthetic()
    draws = draw(data.patients, 2, 300, seed=0)
    sampled = per_draw(roc_auc, data.labels, data.logits["good"], draws)
    difference = paired_difference(sampled, sampled, np.zeros(2), draws, 0.95)
    assert (difference.estimate, difference.low, difference.high) == (0.0, 0.0, 0.0)
    assert difference.verdict == "indistinguishable"


def test_clear_winner_loser_and_tie_with_bonferroni() -> None:
    data = synthetic()
    comparison = compare(data, ["noise", "good", "good_too"], "good", "roc_auc", samples=200, seed=0)
    rows = {row.variant: row for row in comparison.rows}
    assert rows["good"].difference is None
    worse = rows["noise"].difference
    assert worse is not None and worse.verdict == "worse" and worse.high is not None and worse.high < 0
    tie = rows["good_too"].difference
    assert tie is not None and tie.verdict == "indistinguishable" and tie.low is not None and tie.low <= 0
    assert comparison.level == bonferroni_level(2) == pytest.approx(0.975)
    assert all(row.difference.level == comparison.level for row in comparison.rows if row.difference)
    good = rows["good"].score
    assert good.low is not None and good.high is not None and good.low < good.mean < good.high
    assert good.seed_sd == pytest.approx(np.std(good.per_seed, ddof=1))
    reversed_ = compare(data, ["good", "noise"], "noise", "roc_auc", samples=200, seed=0).rows[0].difference
    assert reversed_ is not None and reversed_.verdict == "better"
    table = markdown_table(comparison)
    assert "| good_too |" in table and "indistinguishable" in table and "Bonferroni over 2" in table


def test_bonferroni_level() -> None:
    assert bonferroni_level(1) == pytest.approx(0.95)
    assert bonferroni_level(8) == pytest.approx(1 - 0.05 / 8)


def outputs(
    run: Run, patients: list[str], image_ids: list[str], labels: tuple[int, ...] = (0, 1)
) -> RunOutputs:
    """A run's files as read_run returns them: two test images."""
    frame = pd.DataFrame(
        {
            "image_id": image_ids,
            "patient_id": patients,
            "label_index": list(labels),
            "logit_abnormal": [1.0, 0.0],
            "logit_normal": [0.0, 0.0],
        }
    )
    detail = {"operating_point": {"negative_class": "normal"}, "cost": {"inference_seconds_per_image": 0.01}}
    return RunOutputs(run, "0" * 40, frame, detail, {"classes": CLASSES, "cost": {"parameters": 10}})


def test_runs_on_other_test_patients_are_refused() -> None:
    base, other = Run("base", 1, ()), Run("other", 1, ())
    # The same images in another row order are the same test split.
    same = [outputs(base, ["p1", "p2"], ["a", "b"]), outputs(other, ["p2", "p1"], ["b", "a"], (1, 0))]
    data = align(same, ["base", "other"], [1])
    assert data.logits["other"].shape == (1, 2, 2) and data.cost["other"][0]["parameters"] == 10
    moved = [outputs(base, ["p1", "p2"], ["a", "b"]), outputs(other, ["p1", "p3"], ["a", "b"])]
    with pytest.raises(RadflowError, match=r"other \(seed 1\) .* was tested on other images, patients"):
        align(moved, ["base", "other"], [1])


def test_finished_runs_are_reused_only_with_the_settings_they_would_get_now() -> None:
    params = repo_params()
    name, study = pick_study(parse_study_section(params), None)
    runs = plan_runs(name, study, params)[:4]
    done, running, broken = runs[0], runs[1], runs[2]
    known = {
        done.name(name): Experiment(done.name(name), "a" * 40, "success", run_params(params, done.overrides)),
        running.name(name): Experiment(
            running.name(name), None, "running", run_params(params, running.overrides)
        ),
        broken.name(name): Experiment(broken.name(name), None, "failed", {}),
    }
    # The study section itself may change (another study added) without invalidating a run.
    known[done.name(name)].params["study"] = {"default": "another"}
    finished, waiting, failed, missing = sort_runs(runs, name, params, known)
    assert (finished, waiting, failed, missing) == ([done], [running], [broken], [runs[3]])
    edited = {**params, "train": {**params["train"], "batch_size": 16}}
    with pytest.raises(RadflowError, match=rf"{done.name(name)} was made with another train.batch_size"):
        sort_runs(runs, name, edited, known)


def test_the_default_study_plans_every_variant_at_every_seed() -> None:
    params = repo_params()
    name, study = pick_study(parse_study_section(params), None)
    runs = plan_runs(name, study, params)
    assert len(runs) == len(study.variants) * len(study.seeds)
    assert study.reference in study.variants and {"resnet18", "densenet121", "lrn"} <= set(study.variants)
    first = runs[0]
    assert first.overrides[-1] == f"train.seed={study.seeds[0]}" and first.name(name).endswith("-s1")


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ({"base": [], "typo": ["train.dropuot=0.3"]}, r"variants.typo: override .*unknown key 'dropuot'"),
        ({"base": [], "bad": ["train.dropout=lots"]}, r"variants.bad: .*train.dropout"),
        ({"base": [], "seeded": ["train.seed=5"]}, r"sets train.seed from its seeds"),
        ({"base": [], "dotted.name": []}, r"variant name 'dotted.name'"),
        ({"other": []}, r"reference 'base'"),
        (
            {"base": [], "flat": "train.dropout=0.3"},
            r"study.studies.mine.variants.flat: invalid value .*; valid: a valid list",
        ),
    ],
)
def test_bad_studies_are_refused_before_anything_runs(variants: dict, message: str) -> None:
    params = repo_params()
    study = {"reference": "base", "metric": "roc_auc", "seeds": [1], "common": [], "variants": variants}
    params["study"]["studies"] = {"mine": study}
    params["study"]["default"] = "mine"
    with pytest.raises(RadflowError, match=message):  # when the section is parsed, or when runs are planned
        name, parsed = pick_study(parse_study_section(params), None)
        plan_runs(name, parsed, params)
