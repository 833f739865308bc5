"""What Prefect adds per stage: `radflow retrain` vs plain `dvc repro` on the same no-op pipeline
(`python -m bench.bench_prefect`), with a running local Prefect server (target: under 2 s a stage).

The pipeline is a chain of trivial stages that are already up to date, so both sides only do the
bookkeeping: DVC's checks, and for the flow also the Prefect flow/task runs, their logs and artifacts.
Two pipeline lengths separate the fixed cost (process start, Prefect import, flow run) from the
marginal cost of one more stage (the slope), which is what the 2 s target is about.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from tests.loopback import free_port
from tests.prefect_server import background_server

PATHS = (
    "ingested",
    "private",
    "preprocessed",
    "model",
    "checkpoints",
    "train_live",
    "evaluation",
    "promotion",
    "monitor",
)


def write_pipeline(root: Path, stages: int) -> Path:
    """A git + DVC project whose dvc.yaml is a chain of `stages` trivial stages."""
    root.mkdir(parents=True)
    params = {"paths": {key: f"out/{key}" for key in PATHS} | {"registry": "registry"}, "retrain": {}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    chain = {}
    for index in range(stages):
        step: dict[str, object] = {"cmd": f"python -c \"open('s{index}.txt', 'w').write('{index}')\""}
        step["outs"] = [f"s{index}.txt"]
        if index:
            step["deps"] = [f"s{index - 1}.txt"]
        chain[f"s{index}"] = step
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": chain}, sort_keys=False))
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(command, cwd=root, check=True)
    return root


def seconds(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Wall-clock time of one command, which must succeed."""
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def measure(root: Path, env: dict[str, str], repeats: int) -> tuple[float, float]:
    """Best-of-`repeats` seconds of `dvc repro` and of `radflow retrain` on an up-to-date pipeline.

    The two alternate, and the minimum is kept, so load from other processes hits both sides alike.
    """
    seconds(["dvc", "repro"], root, env)  # first run: makes every stage up to date
    seconds(["radflow", "retrain"], root, env)  # warm-up: registers the flow and its tasks
    dvc, flow = [], []
    for _ in range(repeats):
        dvc.append(seconds(["dvc", "repro"], root, env))
        flow.append(seconds(["radflow", "retrain"], root, env))
    return min(dvc), min(flow)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, nargs=2, default=(2, 8), help="two pipeline lengths")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per command (best kept)")
    args = parser.parse_args()
    console = Console()
    table = Table(title="Prefect retrain vs dvc repro, no-op pipeline, running local server")
    for column in ("stages", "dvc repro (s)", "radflow retrain (s)", "overhead (s)", "overhead/stage (s)"):
        table.add_column(column, justify="right")
    overheads = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        background_server(Path(tmp) / "prefect-home", "127.0.0.1", free_port()) as url,
    ):
        env = {**os.environ, "PREFECT_API_URL": url, "PREFECT_HOME": f"{tmp}/prefect-client"}
        for stages in args.stages:
            dvc, flow = measure(write_pipeline(Path(tmp) / f"chain{stages}", stages), env, args.repeats)
            overheads[stages] = flow - dvc
            per_stage = (flow - dvc) / stages
            table.add_row(str(stages), f"{dvc:.2f}", f"{flow:.2f}", f"{flow - dvc:.2f}", f"{per_stage:.2f}")
    low, high = args.stages
    marginal = (overheads[high] - overheads[low]) / (high - low)
    console.print(table)
    verdict = "[green]meets[/]" if marginal < 2 else "[red]misses[/]"
    console.print(f"marginal Prefect overhead per extra stage: {marginal:.2f} s ({verdict} the < 2 s target)")
    console.print(
        f"fixed overhead (process start, flow run, artifacts): {overheads[low] - low * marginal:.2f} s"
    )


if __name__ == "__main__":
    main()
