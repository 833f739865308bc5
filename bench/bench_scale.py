"""Cost per image as the data grows, one run: the demo archive at ~600, ~6,000 and ~30,000 images through
ingest, preprocess, one training epoch, evaluation and promotion.

Each size is a fresh project folder; each stage runs as its own `radflow stage NAME` process (what DVC
runs), timed (seconds per image: its wall time over the images of the data set) and its process tree
sampled every 50 ms for memory: peak RSS, and apart from it the peak anonymous memory (heap: what
grows when a stage holds data), since RSS also counts the store's pages mapped from the page cache,
which the kernel takes back under pressure. Training reads the store streamed
(`train.store=stream`, the path for stores larger than memory). Promotion registers the first
candidate (re-scoring a champion goes through the same batch-wise scoring as evaluation).

Targets: seconds per image at the largest size <= 1.3x the smallest, and anonymous memory not growing
with the data. Process start-up (imports) is a fixed cost, so the marginal cost per image between the
two largest sizes is reported as well.

`python -m bench.bench_scale [--patients 150,1500,7500] [--demo-size 96] [--size 64]`
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import psutil
import yaml
from rich.console import Console
from rich.table import Table

from tasks.common.params import apply_override, load_params

STAGES = ("ingest", "preprocess", "train", "evaluate", "promote")
SAMPLE_S = 0.05


@dataclass(frozen=True)
class Run:
    """One stage process: wall seconds and peak memory of its process tree (bytes)."""

    seconds: float
    peak_rss: int
    peak_anon: int


def status_bytes(pid: int, *fields: str) -> int:
    """Sum of `fields` (kB lines such as RssAnon) of /proc/<pid>/status, in bytes; 0 once it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0
    values = dict(line.split(":", 1) for line in lines if ":" in line)
    return sum(int(values[field].split()[0]) * 1024 for field in fields if field in values)


def measure(command: list[str], cwd: Path) -> Run:
    """Run `command`, sampling the memory of it and its children until it ends."""
    env = {**os.environ, "RADFLOW_SALT": "bench-salt-not-secret-salt-for-tests-32-bytes-long"}
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = {"rss": 0, "anon": 0}
    stderr: list[bytes] = []
    reader = threading.Thread(target=lambda: stderr.append(process.stderr.read() if process.stderr else b""))
    reader.start()
    root = psutil.Process(process.pid)
    while process.poll() is None:
        try:
            pids = [process.pid, *(child.pid for child in root.children(recursive=True))]
        except psutil.Error:
            pids = [process.pid]
        peak["rss"] = max(peak["rss"], sum(status_bytes(pid, "VmRSS") for pid in pids))
        peak["anon"] = max(peak["anon"], sum(status_bytes(pid, "RssAnon") for pid in pids))
        time.sleep(SAMPLE_S)
    seconds = time.perf_counter() - started
    reader.join()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{b''.join(stderr).decode()[-3000:]}")
    return Run(seconds, peak["rss"], peak["anon"])


def make_project(root: Path, patients: int, demo_size: int, size: int) -> Path:
    """params.yaml (the repository's, with bench settings) in a fresh folder; the demo archive in it."""
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    for override in (
        f"demo.patients={patients}",
        f"demo.image_size={demo_size}",
        f"preprocess.image_size={size}",
        "train.epochs=1",
        "train.store=stream",
        "train.in_channels=1",  # a lighter AlexNet (1 input channel, 256 hidden units): the curve's shape
        "train.hidden_units=256",  # is the point, and 2 shared cores train ~20,000 images per epoch here
        "evaluate.bootstrap_samples=200",
        "promote.bootstrap_samples=200",
        "promote.min_roc_auc=0",  # one epoch need not pass the gate: the first candidate becomes champion
        "promote.min_sensitivity=0",
        "promote.min_specificity=0",
    ):
        apply_override(params, override)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def radflow(*args: str) -> list[str]:
    return [sys.executable, "-c", "from flows.cli import app; app()", *args]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", default="150,1500,7500", help="demo patients per size (~4 images each)")
    parser.add_argument("--demo-size", type=int, default=96, help="demo radiograph side in px")
    parser.add_argument("--size", type=int, default=64, help="preprocess.image_size (training tensors)")
    args = parser.parse_args()
    console = Console(width=150)
    rows: dict[int, dict[str, Run]] = {}
    for patients in (int(p) for p in args.patients.split(",")):
        with tempfile.TemporaryDirectory(prefix="radflow-bench-scale-") as tmp:
            project = make_project(Path(tmp), patients, args.demo_size, args.size)
            demo = measure(radflow("demo-data", "data/raw"), project)
            runs = {stage: measure(radflow("stage", stage), project) for stage in STAGES}
            images = len(pd.read_csv(project / "data" / "preprocessed" / "index.csv", usecols=["split"]))
            rows[images] = runs
            console.print(
                f"{patients} patients, {images} images (demo archive written in {demo.seconds:.0f} s): "
                + ", ".join(f"{stage} {run.seconds:.1f} s" for stage, run in runs.items())
            )
    table = Table(title=f"cost per image as the data grows ({args.size} px tensors, train.store=stream)")
    for column in ("stage", *(f"{n} images" for n in rows), "largest / smallest", "marginal"):
        table.add_column(column)
    sizes = sorted(rows)
    for stage in STAGES:
        per_image = [rows[n][stage].seconds / n * 1e3 for n in sizes]
        marginal = (rows[sizes[-1]][stage].seconds - rows[sizes[-2]][stage].seconds) / (sizes[-1] - sizes[-2])
        table.add_row(
            f"{stage}: ms/image",
            *(f"{value:.2f}" for value in per_image),
            f"{per_image[-1] / per_image[0]:.2f}x",
            f"{marginal * 1e3:.2f}",
        )
        for name, field in (("peak RSS", "peak_rss"), ("peak anonymous", "peak_anon")):
            values = [getattr(rows[n][stage], field) / 2**20 for n in sizes]
            table.add_row(
                f"  {name}, MB", *(f"{value:.0f}" for value in values), f"{values[-1] / values[0]:.2f}x", ""
            )
    console.print(table)


if __name__ == "__main__":
    main()
