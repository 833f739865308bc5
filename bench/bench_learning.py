"""Learning suite: does the default recipe learn what a simple method can see? One run per task.

For each task of `bench.learning_tasks` (generated, patients split by patient), in the same run: the
simple non-deep baseline (`tasks.common.baseline`: scikit-learn on intensity/texture features, fitted
on the train split) and the train stage's recipe from params.yaml (plus `--set` changes), each scored
by test ROC-AUC, with the seconds each took. Target per task: the recipe reaches the task's
`target_auc` and beats the baseline.

`python -m bench.bench_learning [--tasks a,b] [--patients N] [--size S] [--set train.KEY=VALUE ...]
 [--recipe NAME=train.KEY=VALUE,...]`
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from bench.learning_tasks import CLASSES, TASKS, TaskData, describe, make_task, write_store
from tasks.common.baseline import BaselineSettings, baseline_probabilities, fit_baseline, image_features
from tasks.common.operating import log_probabilities
from tasks.common.params import apply_override, load_params, parse_section
from tasks.common.scoring import predict_logits
from tasks.train.data import load_data
from tasks.train.distributed import SINGLE
from tasks.train.loop import macro_auc
from tasks.train.params import TrainParams
from tasks.train.stage import train

# The baseline as evaluate fits it (a 4 x 4 grid of regions, patient-grouped 5-fold CV).
BASELINE = BaselineSettings(grid=4, max_train_images=5000, folds=5)
console = Console()


@dataclass(frozen=True)
class Score:
    auc: float
    seconds: float
    note: str = ""


def baseline_score(data: TaskData, seed: int) -> Score:
    started = time.perf_counter()
    features = image_features(data.images.astype(np.float32), BASELINE.grid)
    train_rows, test_rows = data.splits == "train", data.splits == "test"
    model = fit_baseline(
        features[train_rows], data.labels[train_rows], data.patients[train_rows], BASELINE, seed
    )
    probs = baseline_probabilities(model, features[test_rows], len(CLASSES))
    return Score(macro_auc(data.labels[test_rows], probs), time.perf_counter() - started)


def recipe_score(store: Path, params: TrainParams, seed: int, work: Path) -> Score:
    """Train with `params` on the store in `store` and score the best model on its test split."""
    started = time.perf_counter()
    data = load_data(store, "memory", torch.device("cpu"), 1, SINGLE)
    model, config = train(data, params, seed, work / "checkpoints", work / "live", work / "registry")
    test = data.splits["test"].numpy()
    # AUC is rank-based: log-softmax orders the images as the softmax does
    probs = log_probabilities(predict_logits(model, config, np.asarray(data.images.source), test, 64))
    auc = macro_auc(data.labels[test].numpy(), probs)
    summary = config["training_summary"]
    note = (
        f"loss {summary['first_train_loss']:.3f} -> {summary['lowest_train_loss']:.3f} "
        f"(chance {summary['chance_loss']:.3f}), best val AUC {summary['best_val_auc']:.3f}"
        + ("" if summary["learned"] else ", NOT LEARNED")
    )
    return Score(auc, time.perf_counter() - started, note)


def recipe_params(base: dict, changes: list[str]) -> TrainParams:
    params = json.loads(json.dumps(base))  # a deep copy
    for change in changes:
        apply_override(params, change)
    return parse_section(params, "train", TrainParams)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated, of {list(TASKS)}")
    parser.add_argument("--patients", type=int, default=100, help="patients per task")
    parser.add_argument("--images-per-patient", type=int, default=3)
    parser.add_argument("--size", type=int, default=0, help="image side in px; 0 = preprocess.image_size")
    parser.add_argument("--seed", type=int, default=0, help="data seed (training uses params.yaml's seed)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--set", action="append", default=[], help="train.KEY=VALUE for every recipe")
    parser.add_argument(
        "--recipe",
        action="append",
        default=[],
        help="NAME=train.KEY=VALUE,... an extra recipe beside the default (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = load_params()
    for change in args.set:
        apply_override(params, change)
    size = args.size or int(params["preprocess"]["image_size"])
    seed = int(params["seed"])
    recipes = {"default": recipe_params(params, [])}
    for spec in args.recipe:
        name, _, changes = spec.partition("=")
        recipes[name] = recipe_params(params, [c for c in changes.split(",") if c])
    results: list[dict] = []
    table = Table(
        title=f"learning suite: {args.patients} patients x {args.images_per_patient} images, {size} px"
    )
    for column in ("task", "baseline AUC", *(f"{name} AUC" for name in recipes), "target", "seconds"):
        table.add_column(column)
    for name in args.tasks.split(","):
        task = TASKS[name]
        started = time.perf_counter()
        data = make_task(task, args.patients, args.images_per_patient, size, args.seed)
        console.print(f"{name}: {describe(data)} (generated in {time.perf_counter() - started:.0f} s)")
        base = baseline_score(data, seed)
        console.print(f"{name}: baseline test AUC {base.auc:.3f} ({base.seconds:.0f} s)")
        scores = {}
        with tempfile.TemporaryDirectory() as tmp:
            store = Path(tmp) / "store"
            write_store(data, store)
            for recipe, recipe_settings in recipes.items():
                scores[recipe] = recipe_score(store, recipe_settings, seed, Path(tmp) / recipe)
                console.print(
                    f"{name}: {recipe} test AUC {scores[recipe].auc:.3f} ({scores[recipe].seconds:.0f} s) "
                    + scores[recipe].note
                )
        results.append(
            {
                "task": name,
                "baseline": base.__dict__,
                "recipes": {k: v.__dict__ for k, v in scores.items()},
                "target": task.target_auc,
            }
        )
        table.add_row(
            name,
            f"{base.auc:.3f}",
            *(
                f"{s.auc:.3f}" + (" !" if s.auc < max(task.target_auc, base.auc) else "")
                for s in scores.values()
            ),
            f">= {task.target_auc} and > baseline",
            " / ".join(f"{s.seconds:.0f}" for s in [base, *scores.values()]),
        )
    console.print(table)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
