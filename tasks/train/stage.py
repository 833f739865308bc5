"""Train stage: preprocessed store -> candidate model (`paths.model`: model.safetensors + config.json).

Transfer modes: `full` fine-tuning, `partial` (last N blocks), `linear_probe` (cached frozen features).
Resumable from `paths.checkpoints`; per-epoch metrics in `paths.train_live` (DVCLive). With several
processes (`train.processes` x `train.nodes`) the stage launches itself through torch's elastic launcher
and trains with DDP (tasks.train.launch, tasks.train.distributed); rank 0 writes every output.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn

from models import input_spec, save_model, to_model_input
from tasks.common.data_profile import describe_store
from tasks.common.params import parse_section
from tasks.common.paths import project_paths
from tasks.train import distributed as ddp
from tasks.train.augment import BatchAugment
from tasks.train.cost import training_cost
from tasks.train.data import Rows, TrainData, class_weights, hold, load_data
from tasks.train.features import backbone_digest, cached_features
from tasks.train.launch import check_launch, launch, world_size
from tasks.train.loop import Job, LoopSettings, Prepare, fit
from tasks.train.lr_finder import pick_learning_rate, range_test, write_curve
from tasks.train.network import Network, build_network, make_optimizer, set_train_mode
from tasks.train.params import TrainParams
from tasks.train.pretrain import pretrain_backbone
from tasks.train.schedule import make_scheduler
from tasks.train.selection import weight_choice
from tasks.train.summary import summarise

__all__ = ["TrainParams", "main", "train"]
console = Console(stderr=True)


def pick_device(params: TrainParams, dist: ddp.Dist = ddp.SINGLE) -> torch.device:
    """CUDA (this rank's GPU) when asked for or (auto) available; the CPU otherwise."""
    if params.device == "cuda" or (params.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", dist.local_rank)
    return torch.device("cpu")


def model_config(
    network: Network, data: TrainData, params: TrainParams, seed: int, dist: ddp.Dist = ddp.SINGLE
) -> dict[str, Any]:
    """config.json: how to rebuild the network and feed it (docs/CONTRACTS.md)."""
    return {
        "architecture": network.config.to_dict(),
        "classes": data.classes,
        "image_size": data.image_size,
        "input": input_spec(network.config.in_channels),
        "train": {**params.to_dict(), "world_size": dist.world_size},
        "seed": seed,
    }


MEMORY_FORMAT = torch.channels_last  # (B, S, S, C) in memory: faster convs on CUDA and oneDNN CPUs


@dataclass(frozen=True)
class ImageInput:
    """Store rows (B, 1, S, S) float16 -> network input (B, C, S, S) float32 on `device`, channels last;
    augmented first when given an `augment`."""

    config: dict[str, Any]
    device: torch.device
    augment: BatchAugment | None = None

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device)
        if self.augment is not None:
            batch = self.augment(batch.float())
        return to_model_input(batch, self.config, MEMORY_FORMAT)


def as_is(features: torch.Tensor) -> torch.Tensor:
    """(B, F) cached features go into the head as they are."""
    return features


@dataclass(frozen=True)
class JobInputs:
    """What training steps feed, into which module, and how each kind of step prepares it."""

    rows: Rows
    net: nn.Module
    prepare_train: Prepare
    prepare_eval: Prepare


def image_inputs(
    network: Network,
    data: TrainData,
    config: dict[str, Any],
    device: torch.device,
    augment: BatchAugment | None,
) -> JobInputs:
    """Full and partial fine-tuning: the store's images through the whole model (training's augmented)."""
    return JobInputs(
        rows=data.images,
        net=network.model,
        prepare_train=ImageInput(config, device, augment),
        prepare_eval=ImageInput(config, device),
    )


def feature_inputs(
    network: Network,
    data: TrainData,
    params: TrainParams,
    config: dict[str, Any],
    cache: Path,
    dist: ddp.Dist,
) -> JobInputs:
    """Linear probe: the frozen backbone's features of every image, computed once (and cached on disk
    under a key of the backbone's weights and the data), through the head alone."""
    device = pick_device(params, dist)
    key = backbone_digest(network.backbone, {"data": data.fingerprint, "input": config["input"]})
    features = cached_features(
        network.backbone,
        data.images,
        ImageInput(config, device),
        cache,
        key,
        params.batch_size,
        params.feature_cache_keep,
        dist,
    )
    rows = hold(features, params.store, device, params.processes, "the feature cache")  # (N, F)
    return JobInputs(rows=rows, net=network.head, prepare_train=as_is, prepare_eval=as_is)


def step_nets(
    net: nn.Module, params: TrainParams, device: torch.device, dist: ddp.Dist
) -> tuple[nn.Module, nn.Module]:
    """(what evaluation calls, what a training step calls): DDP across ranks, compiled on CUDA if asked."""
    train_net = ddp.wrap(dist, net, device)  # DDP across ranks, `net` itself alone
    if params.compile and device.type == "cuda":  # the DDP wrapper is compiled, as torch advises
        train_net = torch.compile(train_net)  # type: ignore[assignment]
        net = net if dist.active else train_net
    return net, train_net


def make_loss(data: TrainData, params: TrainParams, device: torch.device) -> nn.Module:
    """Cross-entropy; weighted by the train split's class frequencies for `class_balance: weighted_loss`."""
    if params.class_balance != "weighted_loss":
        return nn.CrossEntropyLoss()
    weights = class_weights(data.labels[data.splits["train"]], len(data.classes))
    return nn.CrossEntropyLoss(weight=weights.to(device))


def make_job(
    network: Network,
    data: TrainData,
    params: TrainParams,
    config: dict[str, Any],
    cache: Path,
    dist: ddp.Dist = ddp.SINGLE,
) -> Job:
    """Wire inputs, preprocessing, loss and optimiser for the configured mode and device."""
    device = pick_device(params, dist)
    network.model.to(device)
    network.model.to(memory_format=MEMORY_FORMAT)  # type: ignore[call-overload]
    augment = BatchAugment(params, device)
    head_only = params.mode == "linear_probe"
    inputs = (
        feature_inputs(network, data, params, config, cache, dist)
        if head_only
        else image_inputs(network, data, config, device, augment if params.augment else None)
    )
    net, train_net = step_nets(inputs.net, params, device, dist)
    optimizer = make_optimizer(network, params)
    return Job(
        net=net,
        model=network.model,
        inputs=inputs.rows,
        labels=data.labels.to(device),
        train_rows=data.splits["train"],
        val_rows=data.splits["val"],
        prepare_train=inputs.prepare_train,
        prepare_eval=inputs.prepare_eval,
        loss=make_loss(data, params, device),
        optimizer=optimizer,
        scheduler=make_scheduler(optimizer, params),
        set_train_mode=partial(set_train_mode, network, head_only),
        reseed=augment.reseed,
        autocast=torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext(),  # type: ignore[arg-type]
        train_net=train_net,
    )


def self_supervised_weights(
    data: TrainData, params: TrainParams, seed: int, checkpoints: Path, dist: ddp.Dist
) -> Path | None:
    """The SimCLR-pretrained backbone file (`weights: self_supervised`), else None.

    Rank 0 pretrains (or finds the cache) while the others wait, then every rank loads the same file:
    with several nodes `paths.checkpoints` is shared storage (docs/CONTRACTS.md).
    """
    if params.weights != "self_supervised":
        return None
    cache = checkpoints / "pretrain"
    path = (
        pretrain_backbone(data.images, data.pixels, params, seed, cache, pick_device(params, dist))
        if dist.leader
        else None
    )
    ddp.barrier(dist)
    return path or pretrain_backbone(data.images, data.pixels, params, seed, cache, pick_device(params, dist))


def train(
    data: TrainData,
    params: TrainParams,
    seed: int,
    checkpoints: Path,
    live: Path,
    registry: Path,
    dist: ddp.Dist = ddp.SINGLE,
) -> tuple[nn.Module, dict[str, Any]]:
    """Build, train and return (best model on the CPU, its config.json content); every rank calls it."""
    started = time.perf_counter()
    torch.manual_seed(seed)
    network = build_network(
        params, len(data.classes), registry, self_supervised_weights(data, params, seed, checkpoints, dist)
    )
    config = model_config(network, data, params, seed, dist)
    curve: list[tuple[float, float, float]] = []
    if params.learning_rate == "auto":  # a range test with the real job, then the job at its pick
        probe = make_job(
            network, data, replace(params, learning_rate=1.0), config, checkpoints / "features", dist
        )
        curve = range_test(probe, params.batch_size, params.lr_finder_steps, seed)
        found = float(
            ddp.broadcast_tensor(dist, torch.tensor([pick_learning_rate(curve)], dtype=torch.float64)).item()
        )
        params = replace(params, learning_rate=found)  # rank 0's pick on every rank
        config["learning_rate_found"] = found
        if dist.leader:
            console.print(f"train: learning_rate auto -> {found:.3g} (range test, {len(curve)} steps)")
    if dist.leader:
        write_curve(curve, live)
    job = make_job(network, data, params, config, checkpoints / "features", dist)
    kept = weight_choice(data, params.min_val_images_per_class, dist)
    settings = LoopSettings(
        epochs=params.epochs,
        batch_size=params.batch_size,
        patience=params.patience,
        balanced_sampling=params.class_balance == "sampler",
        seed=seed,
        checkpoints=checkpoints,
        live_dir=live,
        identity={"train": params.identity(), "seed": seed, "data": data.fingerprint},
        restore_best=kept["selected"] == "best_val_auc",
        dist=dist,
    )
    loop = fit(job, settings)
    if dist.leader:
        console.print(
            f"train: best val AUC {loop['best_auc']:.3f} at epoch {loop['best_epoch']} of {loop['epoch']}"
        )
    config["training_summary"] = summarise(loop, data, params) | kept
    seen = len(job.train_rows) * len(loop["history"])  # every rank's share of each epoch's images
    config["cost"] = training_cost(
        network.model, time.perf_counter() - started, seen, pick_device(params, dist)
    )
    return network.model.cpu().eval(), config


def main(params: dict[str, Any]) -> None:
    """Stage entry point (`radflow stage train`); also what each launched worker runs."""
    settings = parse_section(params, "train", TrainParams)
    paths = project_paths(params)
    on_gpu = pick_device(settings).type == "cuda"
    check_launch(settings, torch.cuda.device_count() if on_gpu else None)
    if world_size(settings) > 1 and not torch.distributed.is_torchelastic_launched():
        launch(main, params, settings)  # this process waits while the workers run main() again
        return
    if settings.threads > 0:
        torch.set_num_threads(settings.threads)
    dist = ddp.start("cuda" if on_gpu else "cpu")
    try:
        device = pick_device(settings, dist)
        data = load_data(paths.preprocessed, settings.store, device, settings.processes, dist)
        model, config = train(
            data,
            settings,
            settings.training_seed(int(params["seed"])),
            paths.checkpoints,
            paths.train_live,
            paths.registry,
            dist,
        )
        if dist.leader:
            config["data_profile"] = describe_store(paths.preprocessed)  # predict's out-of-distribution check
            save_model(model, config, paths.model)
    finally:
        ddp.stop()
