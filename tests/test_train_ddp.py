"""Data-parallel training (issue 15): shards, a real 2-rank gloo run against one process, the stage
launching itself through torch's elastic launcher, a killed rank and the rerun that resumes."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import time
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from models import build_model, input_spec, to_model_input
from tasks.common.errors import RadflowError
from tasks.train import distributed as ddp
from tasks.train.data import Rows, load_data
from tasks.train.features import cached_features
from tasks.train.launch import check_launch, launch_config
from tasks.train.loop import macro_auc
from tasks.train.params import TrainParams
from tasks.train.stage import main, train
from tests.defaults import train_params
from tests.loopback import free_port
from tests.project import SMALL_DEMO, make_project, run
from tests.test_train import project, write_store

CPU = torch.device("cpu")


@pytest.mark.parametrize("world", [2, 3])
def test_shards_are_disjoint_and_cover_the_rows(world: int) -> None:
    ranks = [ddp.Dist(rank=r, world_size=world, local_rank=r, device=CPU) for r in range(world)]
    rows = torch.arange(100, 137)  # 37 rows: divides by neither 2 nor 3
    # Validation / feature extraction: disjoint shards covering every row exactly once, no padding.
    shards = [ddp.shard(rows, dist).tolist() for dist in ranks]
    assert sorted(chain(*shards)) == rows.tolist()
    # Training: every rank the same number of images (so the same number of optimiser steps); together
    # they cover the split, repeating at most world - 1 images to even out; reshuffled every epoch.
    for epoch in (0, 1):
        drawn = [ddp.train_positions(37, None, dist, seed=5, epoch=epoch).tolist() for dist in ranks]
        assert {len(d) for d in drawn} == {-(-37 // world)}
        assert set(chain(*drawn)) == set(range(37))
        assert len(list(chain(*drawn))) - 37 <= world - 1
        assert drawn == [ddp.train_positions(37, None, dist, seed=5, epoch=epoch).tolist() for dist in ranks]
    assert (
        ddp.train_positions(37, None, ranks[0], 5, 0).tolist()
        != ddp.train_positions(37, None, ranks[0], 5, 1).tolist()
    )
    padded = [ddp.padded_shard(37, dist).tolist() for dist in ranks]
    assert {len(p) for p in padded} == {-(-37 // world)} and set(chain(*padded)) == set(range(37))
    # Class-balanced draws: each rank draws only from its own shard of the epoch, the minority class
    # (3 of 37 images) about as often as the majority.
    labels = torch.tensor([1] * 3 + [0] * 34)
    weights = [34 / 37 if label else 3 / 37 for label in labels.tolist()]
    for epoch in (0, 1):
        own = [ddp.train_positions(37, None, dist, seed=5, epoch=epoch) for dist in ranks]
        balanced = [ddp.train_positions(37, weights, dist, seed=5, epoch=epoch) for dist in ranks]
        for mine, drawn_here in zip(own, balanced, strict=True):
            assert set(drawn_here.tolist()) <= set(mine.tolist())
    draws = torch.cat([ddp.train_positions(37, weights, ranks[0], 5, epoch) for epoch in range(60)])
    assert 0.3 < labels[draws].float().mean().item() < 0.7


@pytest.mark.parametrize(
    ("changes", "gpus", "message"),
    [
        (
            {"processes": 3},
            None,
            "train.batch_size: invalid value 32; valid: a multiple of train.processes x",
        ),
        ({"processes": 0}, None, "train.processes: invalid value 0; valid: an integer >= 1"),
        ({"nodes": 2}, None, "train.rendezvous: invalid value None; valid: node 0's host:port"),
        (
            {"nodes": 2, "node_rank": 2, "rendezvous": "h:1"},
            None,
            "train.node_rank: invalid value 2; valid: 0 ..",
        ),
        (
            {"nodes": 2, "rendezvous": "10.0.0.5"},
            None,
            "train.rendezvous: invalid value '10.0.0.5'; valid: node 0's",
        ),
        ({"processes": 4}, 2, "this node has 2 GPU(s)"),
    ],
)
def test_launch_settings_are_checked(changes: dict[str, Any], gpus: int | None, message: str) -> None:
    with pytest.raises(RadflowError, match=re.escape(message)):
        check_launch(train_params(**changes), gpus)


def test_launch_config_is_torchruns(tmp_path: Path) -> None:
    """One node: torchrun --standalone's rendezvous; several: the static one at node 0's address."""
    alone = launch_config(train_params(processes=2), str(tmp_path))
    assert (alone.min_nodes, alone.max_nodes, alone.nproc_per_node, alone.max_restarts) == (1, 1, 2, 0)
    assert (alone.rdzv_backend, alone.rdzv_endpoint) == ("c10d", "localhost:0")
    several = train_params(processes=4, nodes=2, node_rank=1, rendezvous="node0.cluster:29500")
    node1 = launch_config(several, str(tmp_path))
    assert (node1.min_nodes, node1.max_nodes, node1.nproc_per_node, node1.max_restarts) == (2, 2, 4, 0)
    assert (node1.rdzv_backend, node1.rdzv_endpoint) == ("static", "node0.cluster:29500")
    assert node1.rdzv_configs["rank"] == 1


def write_noisy_store(root: Path) -> None:
    """test_train's store with 23 val images (odd: 12 + 11 over two ranks, where a padded shard would
    count one twice), 1 val label in 4 flipped: a val AUC that is neither 0.5 nor 1."""
    write_store(root / "pre", per_class=48)
    index = pd.read_csv(root / "pre" / "index.csv", dtype={"image_id": str})
    val = index.index[index["split"] == "val"]
    flip = val[::4]
    index.loc[flip, "label_index"] = 1 - index.loc[flip, "label_index"]
    index.loc[flip, "label"] = np.array(["effusion", "normal"])[index.loc[flip, "label_index"]]
    index.drop(val[-1]).to_csv(root / "pre" / "index.csv", index=False)


def rank_main(rank: int, world: int, root: Path, params: dict[str, Any]) -> None:
    """One rank of a 2-rank gloo job: train, save the weights this rank ended with, gather 5 values."""
    rendezvous = f"file://{root / 'rendezvous'}"
    torch_dist.init_process_group("gloo", init_method=rendezvous, rank=rank, world_size=world)
    dist = ddp.Dist(rank=rank, world_size=world, local_rank=rank, device=CPU)
    try:
        torch.set_num_threads(1)
        paths = {key: Path(value) for key, value in params["paths"].items()}
        data = load_data(paths["preprocessed"], "stream", CPU, world, dist)
        settings = train_params(**params["train"])
        model, _ = train(
            data, settings, params["seed"], paths["checkpoints"], paths["train_live"], root, dist
        )
        if rank == 1:  # rank 0 goes on to load the best epoch; rank 1 keeps the last one's weights
            weights = {key: value.contiguous() for key, value in model.state_dict().items()}
            save_file(weights, str(root / "rank1.safetensors"))
        positions = ddp.shard(torch.arange(5), dist)  # 5 rows over 2 ranks: 3 + 2
        np.save(root / f"gathered{rank}.npy", ddp.gather_rows(dist, positions, positions.numpy() * 10.0, 5))
        # The feature cache computed sharded (7 rows: 4 + 4 with one repeated), written by rank 0 alone.
        rows = Rows(np.arange(28, dtype=np.float32).reshape(7, 1, 2, 2), CPU, streamed=False)
        cache = root / "features"
        features = cached_features(
            nn.Flatten(), rows, lambda x: x, cache, "k", batch_size=3, keep=1, dist=dist
        )
        np.save(root / f"features{rank}.npy", features)
    finally:
        torch_dist.destroy_process_group()


def val_auc_in_one_process(store: Path, weights: dict[str, torch.Tensor], settings: TrainParams) -> float:
    """Macro AUC of a model with `weights` over the whole val split, scored here in one process."""
    data = load_data(store, "memory", CPU, 1, ddp.SINGLE)
    network = build_model(settings.model_config(len(data.classes)).to_dict())
    network.load_state_dict(weights)
    val = data.splits["val"]
    with torch.no_grad():
        logits = network.eval()(to_model_input(data.images[val].float(), {"input": input_spec(1)}))
    return macro_auc(data.labels[val].numpy(), torch.softmax(logits, 1).numpy())


@pytest.mark.slow
def test_two_ranks_end_identical_and_close_to_one_process(tmp_path: Path) -> None:
    write_noisy_store(tmp_path)
    # Batch 8: 4 images per rank and step. No batch norm, augmentation or dropout, so that the
    # one-process run below computes the same gradients (up to the order of float sums).
    # SGD: its step is linear in the gradient, so the ranks' different order of float sums stays at
    # rounding level (Adam divides by the gradient's running RMS and so magnifies it where that is ~0).
    exact = {
        "epochs": 3,
        "augment": False,
        "dropout": 0.0,
        "norm": "none",
        "optimizer": "sgd",
        "learning_rate": 0.01,
    }
    ddp = project(tmp_path, "ddp", processes=2, **exact)
    mp.spawn(rank_main, args=(2, tmp_path, ddp), nprocs=2, join=True)

    last = torch.load(Path(ddp["paths"]["checkpoints"]) / "last.pt", weights_only=True)
    rank1 = load_file(str(tmp_path / "rank1.safetensors"))
    assert last["model"].keys() == rank1.keys()
    for key, tensor in rank1.items():
        assert torch.equal(last["model"][key], tensor), f"ranks differ in {key}"
    for rank in (0, 1):  # every rank got every value once, in row order; every feature row was written
        np.testing.assert_array_equal(np.load(tmp_path / f"gathered{rank}.npy"), np.arange(5) * 10.0)
        np.testing.assert_array_equal(np.load(tmp_path / f"features{rank}.npy"), np.arange(28).reshape(7, 4))

    # Validation counted each val image once: the AUC logged for the last epoch is that of the last
    # weights over the val split scored in one process.
    logged = last["loop"]["history"][-1]["val_auc"]
    expected = val_auc_in_one_process(tmp_path / "pre", last["model"], train_params(**ddp["train"]))
    assert (
        0.5 < expected < 1.0
        and len(pd.read_csv(tmp_path / "pre" / "index.csv").query("split == 'val'")) == 23
    )
    assert logged == pytest.approx(expected, abs=1e-9)

    # Close to one process on the same problem: the same global batches from the same start.
    single = project(tmp_path, "single", **exact)
    main(single)
    alone = torch.load(Path(single["paths"]["checkpoints"]) / "last.pt", weights_only=True)
    for epoch, (one, two) in enumerate(zip(alone["loop"]["history"], last["loop"]["history"], strict=True)):
        assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-4), epoch
        assert two["val_auc"] == pytest.approx(one["val_auc"], abs=0.01), epoch
    for key, tensor in alone["model"].items():
        torch.testing.assert_close(last["model"][key], tensor, rtol=1e-3, atol=1e-4)


def squash(text: str) -> str:
    """`text` without whitespace: rich wraps long log lines, even inside a path."""
    return "".join(text.split())


def rank_process(stage: subprocess.Popen[str], rank: int) -> psutil.Process:
    """The worker of local `rank` (here the global rank: one node) under the stage process.

    The launcher spawns its workers in rank order (multiprocessing's spawn, whose command lines say
    `spawn_main`), so the rank-th of them by start is that rank's.
    """
    workers = []
    for child in psutil.Process(stage.pid).children():
        with contextlib.suppress(psutil.Error):
            if any("spawn_main" in part for part in child.cmdline()):
                workers.append(child)
    assert len(workers) == 2, f"expected the 2 workers under the stage process, found {len(workers)}"
    return sorted(workers, key=lambda child: (child.create_time(), child.pid))[rank]


@pytest.mark.slow
def test_killed_rank_fails_the_stage_clearly_and_a_rerun_resumes(tmp_path: Path) -> None:
    params = project(tmp_path, "run", epochs=8, processes=2)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    command = [sys.executable, "-c", "from flows.cli import app; app()", "stage", "train"]
    last = Path(params["paths"]["checkpoints"]) / "last.pt"
    stage = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while not last.exists() and stage.poll() is None:
            time.sleep(0.02)
        rank_process(stage, 1).send_signal(signal.SIGKILL)
        _, stderr = stage.communicate(timeout=600)
    finally:
        stage.kill()
    # The stage's last word names the rank and what to do (rank 0 may first report its lost peer).
    assert stage.returncode == 1, stderr[-3000:]
    assert squash(stderr[stderr.rindex("error: ") :]) == squash(
        "error: training process rank 1 was killed by SIGKILL, so the launcher stopped the other ranks; "
        "rerun the stage (dvc repro) to resume from the last checkpoint"
    )
    reached = torch.load(last, weights_only=True)["loop"]["epoch"]
    assert 1 <= reached < 8, "the run was not killed mid-way"

    rerun = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert squash(f"resuming from {last} after epoch {reached}") in squash(rerun.stderr)
    assert squash("all 2 ranks ended with identical weights") in squash(rerun.stderr)
    config = json.loads((Path(params["paths"]["model"]) / "config.json").read_text())
    assert config["train"]["world_size"] == 2 and config["train"]["processes"] == 2
    live = json.loads((Path(params["paths"]["train_live"]) / "metrics.json").read_text())
    assert live["step"] == 7  # the curves hold all 8 epochs, the resumed ones included


@pytest.mark.slow
def test_self_supervised_pretraining_and_the_learning_rate_range_test_run_across_ranks(
    tmp_path: Path,
) -> None:
    """Rank 0 pretrains while the other waits, every rank loads the same file; rank 0's rate is everyone's."""
    params = project(
        tmp_path,
        "run",
        processes=2,
        weights="self_supervised",
        pretrain_epochs=1,
        pretrain_batch_size=8,
        learning_rate="auto",
        lr_finder_steps=8,
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    command = [sys.executable, "-c", "from flows.cli import app; app()", "stage", "train"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    log = squash(result.stderr)
    assert log.count(squash("self-supervised pretraining: epoch 1/1")) == 1  # rank 0 alone pretrained
    assert squash("all 2 ranks ended with identical weights") in log
    assert log.count(squash("learning_rate auto ->")) == 1
    config = json.loads((Path(params["paths"]["model"]) / "config.json").read_text())
    assert config["train"]["world_size"] == 2 and config["learning_rate_found"] > 0
    assert len(list((Path(params["paths"]["checkpoints"]) / "pretrain").glob("pretrain-*.safetensors"))) == 1


# The small demo of tests/project.py, grown to 60 patients and trained long enough to learn it: 20 quick
# epochs of a 1-channel AlexNet without augmentation reach test ROC-AUC ~0.89 (2 cores, 2 ranks).
DDP_DEMO = (
    *(o for o in SMALL_DEMO if not o.startswith(("demo.patients", "train.epochs"))),
    "demo.patients=60",
    "train.epochs=20",
    "train.batch_size=16",
    "train.in_channels=1",
    "train.hidden_units=256",
    "train.augment=false",
    "train.dropout=0.1",
)


@pytest.mark.slow
def test_dvc_exp_run_with_two_processes_learns_the_demo(tmp_path: Path) -> None:
    project_dir = make_project(tmp_path, DDP_DEMO)
    result = run(["dvc", "exp", "run", "-S", "train.processes=2"], project_dir, timeout=1800)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    assert squash("train: 2 processes, 2 on this node (torch elastic launcher") in squash(
        result.stdout + result.stderr
    )
    config = json.loads((project_dir / "data/model/config.json").read_text())
    assert config["train"]["world_size"] == 2
    metrics = json.loads((project_dir / "data/evaluation/metrics.json").read_text())
    assert metrics["roc_auc"] >= 0.85
    card = (project_dir / "data/evaluation/report/model_card.md").read_text()
    assert "| world_size | 2 |" in card


@pytest.mark.slow
def test_two_nodes_meet_at_the_rendezvous_and_only_node_0_writes(tmp_path: Path) -> None:
    """Two machines as the README runs them: each its own checkout (params.yaml, outputs) over a shared
    store, each `radflow stage train` with its node rank, node 1 started first; they meet at node 0's
    rendezvous address (loopback here) and train as one 2-rank job."""
    rendezvous = f"127.0.0.1:{free_port()}"
    command = [sys.executable, "-c", "from flows.cli import app; app()", "stage", "train"]
    nodes = {}
    for rank in (1, 0):
        checkout = tmp_path / f"node{rank}"
        checkout.mkdir()
        params = project(tmp_path, f"node{rank}", processes=1, nodes=2, rendezvous=rendezvous)
        (checkout / "params.yaml").write_text(yaml.safe_dump(params))
        nodes[rank] = subprocess.Popen(
            [*command, "--set", f"train.node_rank={rank}"],
            cwd=checkout,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    try:
        ended = {rank: node.communicate(timeout=600) for rank, node in nodes.items()}
    finally:
        for node in nodes.values():
            node.kill()
    for rank, node in nodes.items():
        assert node.returncode == 0, ended[rank][1][-3000:]
    assert squash("all 2 ranks ended with identical weights") in squash(ended[0][1])
    config = json.loads((tmp_path / "node0" / "model" / "config.json").read_text())
    assert config["train"]["world_size"] == 2 and config["train"]["nodes"] == 2
    assert not (tmp_path / "node1" / "model").exists()  # node 1 (global rank 1) writes no model
