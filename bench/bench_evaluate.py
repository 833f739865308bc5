"""Evaluate-stage cost of the simple baseline, against the whole stage in the same run
(`python -m bench.bench_evaluate`).

On the demo archive (params.yaml's demo and evaluate settings, default 96 px store), each round times
the whole evaluate stage and, separately, the baseline's part of it (features, patient-grouped fit,
scoring val and test). The model is the default AlexNet untrained: scoring costs the same whatever the
weights. Target: the baseline adds at most half of the stage's own time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

import models
import tasks.evaluate.stage as evaluate
import tasks.ingest.stage as ingest
import tasks.preprocess.stage as preprocess
from tasks.common.params import load_params, parse_section
from tasks.common.scoring import read_store
from tasks.demo_data import write_demo_archive
from tasks.evaluate.params import EvaluateParams
from tasks.evaluate.reference import baseline_scores
from tasks.train.data import load_data
from tasks.train.distributed import SINGLE
from tasks.train.network import build_network
from tasks.train.params import TrainParams
from tasks.train.stage import model_config

REPO_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def prepare(root: Path) -> dict:
    """Demo archive -> ingest -> preprocess under `root`, and an untrained default model."""
    params = load_params(REPO_PARAMS)
    params["paths"] = {key: str(root / key) for key in params["paths"]}
    params["ingest"]["source"] = str(root / "raw")
    os.environ.setdefault("RADFLOW_SALT", "bench-salt-not-secret-salt-for-tests-32-bytes-long")
    write_demo_archive(root / "raw", params)
    ingest.main(params)
    preprocess.main(params)
    settings = parse_section(params, "train", TrainParams)
    data = load_data(Path(params["paths"]["preprocessed"]), "memory", torch.device("cpu"), 1, SINGLE)
    network = build_network(settings, len(data.classes), Path(params["paths"]["registry"]))
    models.save_model(network.model, model_config(network, data, settings, 0), Path(params["paths"]["model"]))
    return params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        params = prepare(Path(tmp))
        settings = parse_section(params, "evaluate", EvaluateParams)
        store = read_store(Path(params["paths"]["preprocessed"]))
        stage, baseline = [], []
        for _ in range(args.rounds):
            started = time.perf_counter()
            evaluate.main(params)
            stage.append(time.perf_counter() - started)
            started = time.perf_counter()
            baseline_scores(store, settings, int(params["seed"]))
            baseline.append(time.perf_counter() - started)
    table = Table("rounds", "images (train/val/test)", "evaluate stage s", "baseline part s", "share")
    counts = "/".join(str(len(store.split(name))) for name in ("train", "val", "test"))
    share = statistics.median(baseline) / statistics.median(stage)
    table.add_row(
        str(args.rounds), counts, f"{statistics.median(stage):.1f}", f"{statistics.median(baseline):.1f}",
        f"{share:.0%}",
    )  # fmt: skip
    Console().print(table)


if __name__ == "__main__":
    main()
