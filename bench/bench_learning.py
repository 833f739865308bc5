"""Learning suite: does the default recipe learn what a simple method can see? Judged on held-out seeds.

For each task of `bench.learning_tasks` (generated, split by patient) and each data seed: the simple
non-deep baseline and the train stage's recipe from params.yaml (plus `--set` changes, and any
`--recipe`, which may change `train.*` and `preprocess.*` keys), all judged by the evaluate stage's own
code (`tasks.evaluate`: the baseline fitted on the train split, test ROC-AUC, the did-it-learn and
thin-data warnings), with the seconds each took. Per task and recipe over the seeds: the mean test
ROC-AUC and its spread, and the paired 95% interval of the mean difference (recipe - baseline, and
recipe - default) over patient resamples drawn within each seed's test split. Verdicts come from those
intervals, not from point estimates: "better" only when the interval lies above 0.

Honest use: choose settings on one seed (`--seeds 0`, the tuning seed) and report on fresh ones never
used for choosing (the default `--seeds 1,2,3`).

`python -m bench.bench_learning [--tasks a,b] [--patients N] [--seeds 1,2,3] [--size S]
 [--set SECTION.KEY=VALUE ...] [--recipe NAME=SECTION.KEY=VALUE,...] [--no-default] [--baseline-only]
 [--out FILE]`
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from bench.learning_tasks import (
    CLASSES,
    TASKS,
    LearningTask,
    TaskData,
    describe,
    draw_task,
    preprocess_task,
    write_store,
)
from models.inference import predict_logits
from tasks.common.metrics import patient_bootstrap, roc_auc
from tasks.common.params import apply_override, load_params, parse_section
from tasks.common.scoring import TensorStore, read_store
from tasks.evaluate.evaluation import Scores, evaluate_scores
from tasks.evaluate.params import EvaluateParams
from tasks.evaluate.reference import baseline_scores
from tasks.evaluate.training import read_training_record
from tasks.preprocess.stage import PreprocessParams
from tasks.preprocess.transform import TransformSettings
from tasks.train.checkpoint import LAST
from tasks.train.data import load_data
from tasks.train.distributed import SINGLE
from tasks.train.params import TrainParams
from tasks.train.stage import train

NEGATIVE = "normal"
console = Console(width=220)  # the table is wide; a log file would wrap it at 80


@dataclass(frozen=True)
class Outcome:
    """One recipe on one task, as the evaluate stage judges it."""

    auc: float
    ci: list[float | None]
    minus_baseline_ci: list[float | None]  # paired: the same patient resamples for both
    last_epoch_auc: float  # the final weights instead of the epoch the validation split chose
    learned: bool
    beats_baseline: bool | None  # None: unknown (a test split with one class)
    warnings: list[str]
    training: str
    seconds: float


def scores_of(model: torch.nn.Module, config: dict[str, Any], store: TensorStore) -> Scores:
    """The model's val and test logits, as the evaluate stage computes them."""

    def logits(split: str) -> np.ndarray:
        return predict_logits(model, config, store.images, store.split(split)["row"].to_numpy(), 64)

    return Scores(val=logits("val"), test=logits("test"))


def difference_ci(
    store: TensorStore, model: np.ndarray, baseline: np.ndarray, samples: int, seed: int
) -> Any:
    """95% interval of test ROC-AUC (model - baseline), both on each patient resample."""
    test = store.split("test")
    labels = test["label_index"].to_numpy(dtype=int)

    def difference(rows: np.ndarray) -> dict[str, float]:
        return {"d": roc_auc(labels[rows], model[rows]) - roc_auc(labels[rows], baseline[rows])}

    return patient_bootstrap(test["patient_id"].to_numpy(), difference, samples=samples, seed=seed)["d"]


def last_epoch_auc(model: torch.nn.Module, config: dict[str, Any], store: TensorStore, last: Path) -> float:
    """Test ROC-AUC of the weights in `last` (the final epoch's), whichever epoch the stage kept."""
    final = copy.deepcopy(model)
    final.load_state_dict(torch.load(last, map_location="cpu", weights_only=True)["model"])
    test = store.split("test")
    return roc_auc(test["label_index"].to_numpy(dtype=int), scores_of(final, config, store).test)


def run_recipe(
    folder: Path,
    store: TensorStore,
    baseline: Scores,
    params: TrainParams,
    evaluate: EvaluateParams,
    seed: int,
) -> tuple[Outcome, np.ndarray]:
    """Train with `params` on the store in `folder`, then evaluate as the evaluate stage does; the
    outcome and the test logits."""
    started = time.perf_counter()
    data = load_data(folder / "store", "memory", torch.device("cpu"), 1, SINGLE)
    work = Path(tempfile.mkdtemp(dir=folder))
    model, config = train(data, params, seed, work / "checkpoints", work / "live", work / "registry")
    scores = scores_of(model, config, store)
    seconds = time.perf_counter() - started
    train_labels = store.split("train")["label_index"].to_numpy(dtype=int)
    training = read_training_record(config, work / "live", train_labels, len(CLASSES))
    evaluation = evaluate_scores(
        store, scores, baseline, negative_class=NEGATIVE, training=training, settings=evaluate, seed=seed
    )
    metrics, summary = evaluation.metrics, config["training_summary"]
    outcome = Outcome(
        auc=metrics["roc_auc"],
        ci=[metrics["roc_auc_ci_low"], metrics["roc_auc_ci_high"]],
        minus_baseline_ci=difference_ci(store, scores.test, baseline.test, evaluate.bootstrap_samples, seed),
        last_epoch_auc=last_epoch_auc(model, config, store, work / "checkpoints" / LAST),
        learned=metrics["learned"],
        beats_baseline=metrics["beats_baseline"],
        warnings=evaluation.findings.warnings,
        training=(
            f"loss {summary['first_train_loss']:.3f} -> {summary['lowest_train_loss']:.3f} "
            f"(chance {summary['chance_loss']:.3f}), best val AUC {summary['best_val_auc']:.3f} "
            f"at epoch {summary['best_epoch']}/{summary['epochs_run']}"
        ),
        seconds=seconds,
    )
    return outcome, scores.test


@dataclass(frozen=True)
class Recipe:
    """A training recipe and the preprocessing its images go through."""

    train: TrainParams
    transform: TransformSettings


@dataclass
class SeedRun:
    """One task on one data seed: the test split's labels, patients and every method's test logits."""

    labels: np.ndarray
    patients: np.ndarray
    baseline: np.ndarray
    recipes: dict[str, np.ndarray]
    outcomes: dict[str, Outcome]
    baseline_auc: float


def pooled_difference(
    runs: list[SeedRun], first: str, second: str, samples: int, seed: int
) -> tuple[float, list[float | None]]:
    """Mean over seeds of test ROC-AUC (first - second) and its 95% interval: each resample draws
    patients with replacement within every seed's test split (the same rows for both methods), and
    averages the seeds' differences. `second` may be "baseline"."""

    def scores(run: SeedRun, name: str) -> np.ndarray:
        return run.baseline if name == "baseline" else run.recipes[name]

    def difference(run: SeedRun, rows: np.ndarray) -> float:
        labels = run.labels[rows]
        return roc_auc(labels, scores(run, first)[rows]) - roc_auc(labels, scores(run, second)[rows])

    rng = np.random.default_rng(seed)
    members = [[np.flatnonzero(run.patients == p) for p in np.unique(run.patients)] for run in runs]
    point = float(np.mean([difference(run, np.arange(len(run.labels))) for run in runs]))
    draws = []
    for _ in range(samples):
        means = []
        for run, groups in zip(runs, members, strict=True):
            chosen = rng.integers(0, len(groups), size=len(groups))
            means.append(difference(run, np.concatenate([groups[i] for i in chosen])))
        draws.append(float(np.mean(means)))
    finite = np.asarray(draws)[np.isfinite(draws)]
    if finite.size == 0:
        return point, [None, None]
    return point, [float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))]


def interval(values: list[float | None]) -> str:
    low, high = values
    return "-" if low is None or high is None else f"{low:+.3f} to {high:+.3f}"


def judged(ci: list[float | None]) -> str:
    """better / worse when the paired interval excludes 0, else tie."""
    low, high = ci
    if low is not None and low > 0:
        return "better"
    if high is not None and high < 0:
        return "worse"
    return "tie"


def verdict(mean_auc: float, versus_baseline: list[float | None], task: LearningTask) -> str:
    """met when the mean test AUC reaches the target and the paired interval over the baseline lies
    above 0; else missed, saying which."""
    reasons = []
    if mean_auc < task.target_auc:
        reasons.append(f"mean AUC below {task.target_auc}")
    if judged(versus_baseline) != "better":
        reasons.append(f"{judged(versus_baseline)} with the baseline")
    return "met" if not reasons else f"missed ({', '.join(reasons)})"


def recipe_of(base: dict[str, Any], changes: list[str]) -> Recipe:
    """params.yaml with `changes` (SECTION.KEY=VALUE, train or preprocess) applied, parsed strictly."""
    params = copy.deepcopy(base)
    for change in changes:
        if not change.startswith(("train.", "preprocess.")):
            raise SystemExit(f"recipe change {change!r}: only train.* and preprocess.* keys may differ")
        apply_override(params, change)
    transform = parse_section(params, "preprocess", PreprocessParams).transform_settings()
    return Recipe(parse_section(params, "train", TrainParams), transform)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated, of {list(TASKS)}")
    parser.add_argument("--patients", type=int, default=240, help="patients per task and seed")
    parser.add_argument("--images-per-patient", type=int, default=2)
    parser.add_argument("--size", type=int, default=0, help="image side in px; 0 = preprocess.image_size")
    parser.add_argument(
        "--seeds",
        default="1,2,3",
        help="data seeds, comma-separated (0: the tuning seed; report others)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: fastest on a busy CPU)")
    parser.add_argument("--set", action="append", default=[], help="SECTION.KEY=VALUE for every recipe")
    parser.add_argument(
        "--recipe",
        action="append",
        default=[],
        help="NAME=SECTION.KEY=VALUE,... (train or preprocess keys) an extra recipe beside the default",
    )
    parser.add_argument("--no-default", action="store_true", help="run only the --recipe recipes")
    parser.add_argument("--baseline-only", action="store_true", help="generate and score the baseline only")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    return parser.parse_args()


def run_seed(
    task: LearningTask, args: argparse.Namespace, seed: int, recipes: dict[str, Recipe], default: Recipe,
    evaluate: EvaluateParams, train_seed: int,
) -> SeedRun:  # fmt: skip
    """Generate one data seed of `task`, score the baseline (on the default preprocessing) and train
    every recipe (each on its own preprocessing of the same raw images)."""
    started = time.perf_counter()
    raw = draw_task(task, args.patients, args.images_per_patient, seed)
    stores: dict[TransformSettings, TaskData] = {default.transform: preprocess_task(raw, default.transform)}
    data = stores[default.transform]
    console.print(f"{task.name} seed {seed}: {describe(data)} ({time.perf_counter() - started:.0f} s)")
    test_rows = data.splits == "test"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "default"
        write_store(data, folder / "store")
        store = read_store(folder / "store")
        started = time.perf_counter()
        baseline = baseline_scores(store, evaluate, train_seed)
        base_auc = roc_auc(data.labels[test_rows], baseline.test)
        took = time.perf_counter() - started
        console.print(f"{task.name} seed {seed}: baseline test AUC {base_auc:.3f} ({took:.0f} s)")
        logits, outcomes = {}, {}
        for name, recipe in recipes.items():
            if recipe.transform not in stores:
                stores[recipe.transform] = preprocess_task(raw, recipe.transform)
            folder = Path(tmp) / name
            write_store(stores[recipe.transform], folder / "store")
            own = read_store(folder / "store")
            outcome, test_logits = run_recipe(folder, own, baseline, recipe.train, evaluate, train_seed)
            logits[name], outcomes[name] = test_logits, outcome
            print(f"{task.name} seed {seed}: {name}: {json.dumps(asdict(outcome))}", flush=True)
    return SeedRun(
        data.labels[test_rows], data.patients[test_rows], baseline.test, logits, outcomes, base_auc
    )


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    params = load_params()
    for change in args.set + ([f"preprocess.image_size={args.size}"] if args.size else []):
        apply_override(params, change)
    seeds = [int(seed) for seed in args.seeds.split(",")]
    train_seed = int(params["seed"])
    evaluate = parse_section(params, "evaluate", EvaluateParams)
    default = recipe_of(params, [])
    recipes = {} if args.no_default or args.baseline_only else {"default": default}
    for spec in [] if args.baseline_only else args.recipe:
        name, _, changes = spec.partition("=")
        recipes[name] = recipe_of(params, [c for c in changes.split(",") if c])
    results: list[dict[str, Any]] = []
    table = Table(
        title=f"learning suite: {args.patients} patients x {args.images_per_patient} images per seed, "
        f"seeds {args.seeds}"
    )
    for column in ("task", "recipe", "px", "test AUC mean ± sd [min-max]", "baseline mean"):
        table.add_column(column)
    for column in ("- baseline, mean [paired 95% CI]", "- default [CI]", "verdict", "seconds"):
        table.add_column(column)
    samples = evaluate.bootstrap_samples
    for task_name in args.tasks.split(","):
        task = TASKS[task_name]
        runs = [run_seed(task, args, seed, recipes, default, evaluate, train_seed) for seed in seeds]
        base_mean = float(np.mean([run.baseline_auc for run in runs]))
        summary: dict[str, Any] = {"task": task_name, "target": task.target_auc, "seeds": seeds}
        summary["baseline_auc"] = [run.baseline_auc for run in runs]
        summary["recipes"] = {}
        for name, recipe in recipes.items() or {"-": None}.items():
            if recipe is None:
                table.add_row(task_name, "-", "-", "-", f"{base_mean:.3f}", "-", "-", "-", "-")
                continue
            aucs = [run.outcomes[name].auc for run in runs]
            over_base = pooled_difference(runs, name, "baseline", samples, train_seed)
            over_default = (
                pooled_difference(runs, name, "default", samples, train_seed)
                if "default" in recipes and name != "default"
                else None
            )
            seconds = float(np.mean([run.outcomes[name].seconds for run in runs]))
            summary["recipes"][name] = {
                "aucs": aucs,
                "mean": float(np.mean(aucs)),
                "sd": float(np.std(aucs, ddof=1)) if len(aucs) > 1 else 0.0,
                "minus_baseline": over_base,
                "minus_default": over_default,
                "seconds": seconds,
                "per_seed": [asdict(run.outcomes[name]) for run in runs],
            }
            row = summary["recipes"][name]
            table.add_row(
                task_name,
                name,
                str(recipe.transform.image_size),
                f"{row['mean']:.3f} ± {row['sd']:.3f} [{min(aucs):.3f}-{max(aucs):.3f}]",
                f"{base_mean:.3f}",
                f"{over_base[0]:+.3f} [{interval(over_base[1])}] {judged(over_base[1])}",
                "-"
                if over_default is None
                else f"{over_default[0]:+.3f} [{interval(over_default[1])}] {judged(over_default[1])}",
                verdict(row["mean"], over_base[1], task),
                f"{seconds:.0f}",
            )
        results.append(summary)
        if args.out:  # after every task: a long run that is stopped keeps what it finished
            args.out.write_text(json.dumps(results, indent=1))
    console.print(table)


if __name__ == "__main__":
    main()
