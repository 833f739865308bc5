"""Learning suite: does the default recipe learn what a simple method can see? One run per task.

For each task of `bench.learning_tasks` (generated, split by patient), in the same run: the simple
non-deep baseline and the train stage's recipe from params.yaml (plus `--set` changes), both judged by
the evaluate stage's own code (`tasks.evaluate`: the baseline fitted on the train split, test ROC-AUC with
patient-bootstrap 95% intervals, the did-it-learn and thin-data warnings), with the seconds each took.
Beside that: the paired bootstrap interval of (recipe - baseline) on the same patient resamples, and the
test ROC-AUC of the last epoch's weights next to those of the epoch the validation split chose. Target
per task: the recipe reaches the task's `target_auc` and beats the baseline.

`python -m bench.bench_learning [--tasks a,b] [--patients N] [--size S] [--set SECTION.KEY=VALUE ...]
 [--recipe NAME=train.KEY=VALUE,...] [--no-default] [--baseline-only] [--out FILE]`
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

from bench.learning_tasks import CLASSES, TASKS, LearningTask, describe, make_task, write_store
from tasks.common.metrics import patient_bootstrap, roc_auc
from tasks.common.params import apply_override, load_params, parse_section
from tasks.common.scoring import TensorStore, predict_logits, read_store
from tasks.evaluate.evaluation import EvaluateParams, Scores, evaluate_scores
from tasks.evaluate.reference import baseline_scores
from tasks.evaluate.training import read_training_record
from tasks.preprocess.stage import PreprocessParams
from tasks.train.checkpoint import LAST
from tasks.train.data import load_data
from tasks.train.distributed import SINGLE
from tasks.train.params import TrainParams
from tasks.train.stage import train

NEGATIVE = "normal"
console = Console()


@dataclass(frozen=True)
class Outcome:
    """One recipe on one task, as the evaluate stage judges it."""

    auc: float
    ci: list[float | None]
    minus_baseline_ci: list[float | None]  # paired: the same patient resamples for both
    last_epoch_auc: float  # the final weights instead of the epoch the validation split chose
    learned: bool
    beats_baseline: bool
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
) -> Outcome:
    """Train with `params` on the store in `folder`, then evaluate as the evaluate stage does."""
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
    return Outcome(
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


def baseline_record(store: TensorStore, baseline: Scores, samples: int, seed: int) -> dict[str, Any]:
    """The baseline's test ROC-AUC and its patient-bootstrap 95% interval."""
    test = store.split("test")
    labels = test["label_index"].to_numpy(dtype=int)

    def auc(rows: np.ndarray) -> dict[str, float]:
        return {"auc": roc_auc(labels[rows], baseline.test[rows])}

    ci = patient_bootstrap(test["patient_id"].to_numpy(), auc, samples=samples, seed=seed)["auc"]
    return {"auc": auc(np.arange(len(labels)))["auc"], "ci": ci}


def interval(values: list[float | None]) -> str:
    low, high = values
    return "-" if low is None or high is None else f"{low:.2f}-{high:.2f}"


def verdict(outcome: Outcome, baseline_auc: float, task: LearningTask) -> str:
    """met / missed against the task's target, with the evaluation's flags."""
    flags = [] if outcome.learned else ["NOT LEARNED"]
    if not outcome.beats_baseline:
        flags.append("no better than baseline")
    met = outcome.auc >= task.target_auc and outcome.auc > baseline_auc
    return ("met" if met else "missed") + (f" ({', '.join(flags)})" if flags else "")


def recipe_params(base: dict[str, Any], changes: list[str]) -> TrainParams:
    """params.yaml's train section with `changes` (SECTION.KEY=VALUE) applied, parsed strictly."""
    params = copy.deepcopy(base)
    for change in changes:
        apply_override(params, change)
    return parse_section(params, "train", TrainParams)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated, of {list(TASKS)}")
    parser.add_argument("--patients", type=int, default=240, help="patients per task")
    parser.add_argument("--images-per-patient", type=int, default=2)
    parser.add_argument("--size", type=int, default=0, help="image side in px; 0 = preprocess.image_size")
    parser.add_argument("--seed", type=int, default=0, help="data seed (training uses params.yaml's seed)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: fastest on a busy CPU)")
    parser.add_argument("--set", action="append", default=[], help="SECTION.KEY=VALUE for every recipe")
    parser.add_argument(
        "--recipe",
        action="append",
        default=[],
        help="NAME=train.KEY=VALUE,... an extra recipe beside the default (repeatable)",
    )
    parser.add_argument("--no-default", action="store_true", help="run only the --recipe recipes")
    parser.add_argument("--baseline-only", action="store_true", help="generate and score the baseline only")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    params = load_params()
    for change in args.set:
        apply_override(params, change)
    size = args.size or int(params["preprocess"]["image_size"])
    transform = parse_section(params, "preprocess", PreprocessParams).transform_settings(size)
    seed = int(params["seed"])
    evaluate = parse_section(params, "evaluate", EvaluateParams)
    recipes = {} if args.no_default or args.baseline_only else {"default": recipe_params(params, [])}
    for spec in [] if args.baseline_only else args.recipe:
        name, _, changes = spec.partition("=")
        recipes[name] = recipe_params(params, [c for c in changes.split(",") if c])
    results: list[dict[str, Any]] = []
    table = Table(
        title=f"learning suite: {args.patients} patients x {args.images_per_patient} images, {size} px"
    )
    for column in ("task", "test pat. (pos)", "baseline AUC [95% CI]", "recipe", "AUC [95% CI]"):
        table.add_column(column)
    for column in ("- baseline [CI]", "last epoch", "verdict", "target", "seconds"):
        table.add_column(column)
    for name in args.tasks.split(","):
        task = TASKS[name]
        started = time.perf_counter()
        data = make_task(task, args.patients, args.images_per_patient, transform, args.seed)
        console.print(f"{name}: {describe(data)} (generated in {time.perf_counter() - started:.0f} s)")
        test_rows = data.splits == "test"
        positive = test_rows & (data.labels == CLASSES.index("finding"))
        test_patients = f"{len(set(data.patients[test_rows]))} ({len(set(data.patients[positive]))})"
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            write_store(data, folder / "store")
            store = read_store(folder / "store")
            started = time.perf_counter()
            baseline = baseline_scores(store, evaluate, seed)
            base = baseline_record(store, baseline, evaluate.bootstrap_samples, seed)
            base["seconds"] = time.perf_counter() - started
            line = f"baseline test AUC {base['auc']:.3f} [{interval(base['ci'])}] ({base['seconds']:.0f} s)"
            console.print(f"{name}: {line}")
            outcomes: dict[str, Outcome] = {}
            for recipe, settings in recipes.items():
                outcome = run_recipe(folder, store, baseline, settings, evaluate, seed)
                outcomes[recipe] = outcome
                print(f"{name}: {recipe}: {json.dumps(asdict(outcome))}", flush=True)
        results.append(
            {"task": name, "target": task.target_auc, "test_patients": test_patients, "baseline": base}
            | {"recipes": {recipe: asdict(outcome) for recipe, outcome in outcomes.items()}}
        )
        shown: dict[str, Outcome | None] = {**outcomes} or {"-": None}  # "-": a task run with no recipe
        for recipe, outcome_shown in shown.items():
            table.add_row(
                name,
                test_patients,
                f"{base['auc']:.3f} [{interval(base['ci'])}]",
                recipe,
                *(
                    ["-"] * 4
                    if outcome_shown is None
                    else [
                        f"{outcome_shown.auc:.3f} [{interval(outcome_shown.ci)}]",
                        interval(outcome_shown.minus_baseline_ci),
                        f"{outcome_shown.last_epoch_auc:.3f}",
                        verdict(outcome_shown, base["auc"], task),
                    ]
                ),
                f">= {task.target_auc} and > baseline",
                f"{base['seconds']:.0f}"
                + ("" if outcome_shown is None else f" / {outcome_shown.seconds:.0f}"),
            )
    console.print(table)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
