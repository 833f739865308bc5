"""Training throughput, one run: radflow's epoch against the bare model step and the MONAI-tutorial loop.

(a) Full fine-tuning, images/s of one epoch (fastest of `--repeats` alternating epochs after a warm-up
    epoch each), same model, image size, batch, optimiser and augmentations (flip, rotation, zoom,
    intensity shift, noise):
    - bare model step: forward, backward and optimiser step on one batch already prepared in memory,
      same network, optimiser and loss objects as radflow's, same process; the ceiling of any data path.
      Target: radflow >= 0.9x (the data path costs <= 10%).
    - radflow, store in memory and store streamed from the memory-mapped file (`train.store`).
    - a plain per-sample MONAI Dataset + DataLoader loop (the tutorial recipe). Target: radflow >= 2x.
(b) Linear probe: per-epoch time after the first epoch; the baseline runs the frozen backbone every
    epoch, radflow trains the head on features cached in its first epoch. Target: radflow >= 20x.

`python -m bench.bench_train [--images N] [--size S] [--threads T]` (size default: params.yaml's
preprocess.image_size, the size training runs at)
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from monai.data import DataLoader, Dataset
from monai.transforms import (
    Compose,
    RandFlipd,
    RandGaussianNoised,
    RandRotated,
    RandShiftIntensityd,
    RandZoomd,
)
from rich.console import Console
from rich.table import Table
from torch import nn

from models import to_model_input
from tasks.common.params import load_params, parse_section
from tasks.train.data import StoreMode, TrainData, load_data
from tasks.train.distributed import SINGLE
from tasks.train.loop import Job, train_one_epoch
from tasks.train.network import build_network
from tasks.train.params import TrainParams
from tasks.train.stage import make_job, model_config

CLASSES = ["a", "b", "c"]
CPU = torch.device("cpu")
VAL_IMAGES = 8
SETTINGS = load_params()
# The training settings users run (params.yaml), with augmentation on as the MONAI baseline has it.
PARAMS = replace(parse_section(SETTINGS, "train", TrainParams), augment=True)
Epoch = Callable[[], float]  # runs one epoch, returns its seconds


def write_store(folder: Path, images: int, size: int) -> None:
    """A preprocessed store of random images, all in the train split but for a token val split."""
    rng = np.random.default_rng(0)
    np.save(folder / "images.npy", rng.uniform(0, 1, (images, 1, size, size)).astype(np.float16))
    split = np.where(np.arange(images) < images - VAL_IMAGES, "train", "val")
    labels = np.arange(images) % len(CLASSES)
    pd.DataFrame({"row": np.arange(images), "label_index": labels, "split": split}).to_csv(
        folder / "index.csv", index=False
    )
    (folder / "classes.json").write_text(json.dumps({"classes": CLASSES, "image_size": size}))


def open_store(folder: Path, mode: StoreMode) -> TrainData:
    return load_data(folder, mode, CPU, 1, SINGLE)


def baseline_loader(folder: Path, params: TrainParams, augment: bool) -> DataLoader:
    """The textbook pipeline: a MONAI Dataset of per-sample dicts, random transforms per sample."""
    images = np.load(folder / "images.npy")
    train_rows = range(len(images) - VAL_IMAGES)
    items = [{"image": images[r].astype(np.float32), "label": r % len(CLASSES)} for r in train_rows]
    transforms = [
        RandFlipd("image", prob=0.5, spatial_axis=1),
        RandRotated("image", range_x=math.radians(params.rotate_degrees), prob=1.0),
        RandZoomd("image", min_zoom=1 - params.zoom, max_zoom=1 + params.zoom, prob=1.0),
        RandShiftIntensityd("image", offsets=params.intensity_shift, prob=1.0),
        RandGaussianNoised("image", std=params.noise_std, prob=1.0),
    ]
    dataset = Dataset(items, transform=Compose(transforms if augment else []))
    return DataLoader(dataset, batch_size=params.batch_size, shuffle=True, num_workers=0)


def baseline_epoch(folder: Path, params: TrainParams, probe: bool) -> Epoch:
    """One epoch of a plain loop. Linear probe: the frozen backbone runs on every batch."""
    data = open_store(folder, "memory")
    network = build_network(params, len(CLASSES), Path("."))
    config = model_config(network, data, params, seed=0)
    trainable = network.head if probe else network.model
    optimizer = torch.optim.AdamW(trainable.parameters(), lr=float(params.learning_rate))
    loader = baseline_loader(folder, params, augment=not probe)
    loss_fn = nn.CrossEntropyLoss()

    def epoch() -> float:
        started = time.perf_counter()
        network.model.train(not probe)
        network.head.train()
        for batch in loader:
            inputs = to_model_input(torch.as_tensor(batch["image"]), config)
            if probe:
                with torch.no_grad():
                    inputs = network.backbone(inputs)
            loss = loss_fn(network.head(inputs) if probe else network.model(inputs), batch["label"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return time.perf_counter() - started

    return epoch


def radflow_job(folder: Path, params: TrainParams, mode: StoreMode, cache: Path) -> Job:
    """radflow's own training job (make_job): network, optimiser, loss and data path as the stage has them."""
    data = open_store(folder, mode)
    network = build_network(params, len(CLASSES), Path("."))
    return make_job(network, data, params, model_config(network, data, params, seed=0), cache)


def radflow_epoch(folder: Path, params: TrainParams, mode: StoreMode, cache: Path) -> Epoch:
    """One epoch of radflow's loop (train_one_epoch); with the linear probe the first caches features."""
    jobs: list[Job] = []

    def epoch() -> float:
        started = time.perf_counter()
        if not jobs:
            jobs.append(radflow_job(folder, params, mode, cache))
        job = jobs[0]
        train_one_epoch(job, torch.randperm(len(job.train_rows)), params.batch_size, advance=lambda n: None)
        return time.perf_counter() - started

    return epoch


def bare_step_epoch(folder: Path, params: TrainParams, cache: Path) -> Epoch:
    """As many model steps as an epoch has batches, all on one batch prepared once: no data path at all."""
    job = radflow_job(folder, params, "memory", cache)
    rows = job.train_rows[: params.batch_size]
    inputs, labels = job.prepare_eval(job.inputs[rows]), job.labels[rows]  # (B, C, S, S), (B,)
    steps = math.ceil(len(job.train_rows) / params.batch_size)

    def epoch() -> float:
        started = time.perf_counter()
        job.set_train_mode()
        for _ in range(steps):
            loss = job.loss(job.net(inputs), labels)
            job.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            job.optimizer.step()
        return time.perf_counter() - started

    return epoch


def fastest(runs: dict[str, Epoch], repeats: int) -> dict[str, float]:
    """Seconds of each run's fastest epoch: a warm-up epoch each, then `repeats` rounds alternating them
    (fair on a CPU shared with other work, whose load moves between rounds)."""
    for run in runs.values():
        run()  # allocator, first touch, one-time set-up
    timings: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            timings[name].append(run())
    return {name: min(times) for name, times in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = int(SETTINGS["preprocess"]["image_size"])
    parser.add_argument("--images", type=int, default=520, help=f"images in the store ({VAL_IMAGES} are val)")
    parser.add_argument("--size", type=int, default=size, help=f"image side in px (default {size})")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed full fine-tuning epochs per run")
    parser.add_argument(
        "--probe-epochs", type=int, default=3, help="linear-probe epochs timed after the first"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console()
    table = Table(title=f"train throughput, {args.images} images at {args.size}px, {args.threads} threads")
    for column in ("benchmark", "baseline", "radflow", "ratio", "target"):
        table.add_column(column)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_store(folder, args.images, args.size)
        n = args.images - VAL_IMAGES
        full = replace(PARAMS, mode="full")
        seconds = fastest(
            {
                "bare model step": bare_step_epoch(folder, full, folder),
                "radflow (memory)": radflow_epoch(folder, full, "memory", folder),
                "radflow (stream)": radflow_epoch(folder, full, "stream", folder),
                "MONAI loop": baseline_epoch(folder, full, probe=False),
            },
            args.repeats,
        )
        rate = {name: n / value for name, value in seconds.items()}
        for name, value in rate.items():
            console.print(f"full fine-tuning, {name}: {value:.1f} images/s")
        for baseline, radflow, target in (
            ("bare model step", "radflow (memory)", ">= 0.9x"),
            ("bare model step", "radflow (stream)", ">= 0.9x"),
            ("MONAI loop", "radflow (memory)", ">= 2x"),
            ("radflow (memory)", "radflow (stream)", "-"),
        ):
            table.add_row(
                f"full fine-tuning, images/s: {radflow} vs {baseline}",
                f"{rate[baseline]:.1f}",
                f"{rate[radflow]:.1f}",
                f"{rate[radflow] / rate[baseline]:.2f}x",
                target,
            )

        probe = replace(PARAMS, mode="linear_probe")
        runs = {
            "baseline": baseline_epoch(folder, probe, probe=True),
            "radflow": radflow_epoch(folder, probe, "memory", folder),
        }
        first, later = {}, {}
        for name, run in runs.items():
            first[name] = run()
            later[name] = min(run() for _ in range(args.probe_epochs))
            console.print(f"linear probe, {name}: first epoch {first[name]:.2f} s, later {later[name]:.3f} s")
        table.add_row(
            "linear probe (s/epoch after the first)",
            f"{later['baseline']:.3f}",
            f"{later['radflow']:.3f}",
            f"{later['baseline'] / later['radflow']:.1f}x",
            ">= 20x",
        )
        table.add_row(
            "linear probe (s, first epoch)",
            f"{first['baseline']:.2f}",
            f"{first['radflow']:.2f}",
            f"{first['baseline'] / first['radflow']:.2f}x",
            "-",
        )
    console.print(table)


if __name__ == "__main__":
    main()
