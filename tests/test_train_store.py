"""The store in memory or streamed (issue 15): the same training either way, and a store larger than the
memory the stage may use still trains when streamed."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.store_index import write_index
from tests.test_train import SIZE, main, project

CAP_BYTES = 900 * 2**20  # RLIMIT_DATA of the capped stage: imports and training need ~600 MB of it
STORE_ROWS = 140_000  # x 8 KB (64 x 64 float16) = 1.15 GB, more than the cap


def test_streamed_store_trains_exactly_as_in_memory(tmp_path: Path) -> None:
    runs = {
        mode: project(tmp_path, mode, store=mode, class_balance="sampler") for mode in ("memory", "stream")
    }
    for params in runs.values():
        main(params)
    memory, stream = ((Path(runs[m]["paths"]["model"]) / "model.safetensors").read_bytes() for m in runs)
    assert memory == stream


def write_large_store(root: Path, learnable: int = 1_200) -> None:
    """A STORE_ROWS-image store, sparse on disk: the first `learnable` images carry the train/val signal
    (pairs: train, train, val, train, ...), the rest are blank test images that training never reads."""
    root.mkdir(parents=True)
    images = np.lib.format.open_memmap(
        root / "images.npy", mode="w+", dtype=np.float16, shape=(STORE_ROWS, 1, SIZE, SIZE)
    )
    rng = np.random.default_rng(0)
    labels = np.arange(STORE_ROWS) % 2
    signal = rng.uniform(0.0, 0.3, (learnable, 1, SIZE, SIZE)).astype(np.float16)
    signal[labels[:learnable] == 1, :, 20:40, 20:40] += np.float16(0.6)
    images[:learnable] = signal
    images.flush()
    del images
    split = np.full(STORE_ROWS, "test", dtype=object)
    split[:learnable] = np.where(np.arange(learnable) // 2 % 4 == 2, "val", "train")
    write_index(root, labels, split, ["effusion", "normal"], np.arange(STORE_ROWS), SIZE)


def capped_stage(project_dir: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    """`radflow stage train` in a process whose data segment (heap, anonymous maps) is capped."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (CAP_BYTES, CAP_BYTES))

    command = [sys.executable, "-c", "from flows.cli import app; app()", "stage", "train"]
    for override in overrides:
        command += ["--set", override]
    # One thread per pool: each thread's stack counts against the cap, and a many-core machine
    # would otherwise start dozens (OpenMP, OpenBLAS) before the stage sets its own thread count.
    threads = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    return subprocess.run(
        command,
        cwd=project_dir,
        env={**os.environ, **threads},
        preexec_fn=cap,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.mark.slow
def test_a_store_larger_than_the_memory_cap_trains_streamed(tmp_path: Path) -> None:
    write_large_store(tmp_path / "pre")
    params = project(tmp_path, "run", epochs=1, batch_size=32, store="auto")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    store_bytes = (tmp_path / "pre" / "images.npy").stat().st_size
    assert store_bytes > CAP_BYTES

    held = capped_stage(tmp_path, "train.store=memory")  # the cap bites: the store cannot be held
    assert held.returncode == 1
    assert "does not fit in memory" in held.stderr and "train.store=stream" in held.stderr
    assert "Traceback" not in held.stderr

    streamed = capped_stage(tmp_path)  # auto sees the cap and streams
    assert streamed.returncode == 0, streamed.stderr[-3000:]
    assert "streamed from disk" in streamed.stderr
    config = json.loads((Path(params["paths"]["model"]) / "config.json").read_text())
    assert config["train"]["store"] == "auto"
    live = json.loads((Path(params["paths"]["train_live"]) / "metrics.json").read_text())
    assert live["val_auc"] > 0.9  # it learned the signal, reading only the rows it trains on
