"""Train stage: preprocessed store -> candidate model (`paths.model`: model.safetensors + config.json).

Transfer modes: `full` fine-tuning, `partial` (last N blocks), `linear_probe` (cached frozen features).
Resumable from `paths.checkpoints`; per-epoch metrics in `paths.train_live` (DVCLive).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn

from models import input_spec, save_model, to_model_input
from tasks.common.data_profile import describe_store
from tasks.common.params import parse_section
from tasks.common.paths import project_paths
from tasks.train.augment import BatchAugment
from tasks.train.data import TrainData, class_weights, load_data
from tasks.train.features import backbone_digest, cached_features
from tasks.train.loop import Job, LoopSettings, Prepare, fit
from tasks.train.lr_finder import pick_learning_rate, range_test, write_curve
from tasks.train.network import Network, build_network, make_optimizer, make_scheduler, set_train_mode
from tasks.train.params import TrainParams
from tasks.train.pretrain import pretrain_backbone
from tasks.train.selection import select_weights
from tasks.train.summary import summarise

__all__ = ["TrainParams", "main", "train"]
console = Console(stderr=True)


def pick_device(params: TrainParams) -> torch.device:
    """CUDA when asked for or (auto) available; the CPU otherwise."""
    if params.device == "cuda" or (params.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def model_config(network: Network, data: TrainData, params: TrainParams, seed: int) -> dict[str, Any]:
    """config.json: how to rebuild the network and feed it (docs/CONTRACTS.md)."""
    return {
        "architecture": network.config.to_dict(),
        "classes": data.classes,
        "image_size": data.image_size,
        "input": input_spec(network.config.in_channels),
        "train": params.to_dict(),
        "seed": seed,
    }


def make_job(
    network: Network, data: TrainData, params: TrainParams, config: dict[str, Any], cache: Path
) -> Job:
    """Wire inputs, preprocessing, loss and optimiser for the configured mode and device."""
    device = pick_device(params)
    cuda = device.type == "cuda"
    memory_format = torch.channels_last  # (B, S, S, C) in memory: faster convs on CUDA and oneDNN CPUs
    network.model.to(device)
    network.model.to(memory_format=memory_format)  # type: ignore[call-overload]
    augment = BatchAugment(params)

    def images_in(batch: torch.Tensor) -> torch.Tensor:  # (B, 1, S, S) float16 -> (B, C, S, S)
        return to_model_input(batch.to(device).float(), config).contiguous(memory_format=memory_format)

    def augmented_in(batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(device).float()
        return images_in(augment(batch) if params.augment else batch)

    def features_in(features: torch.Tensor) -> torch.Tensor:  # (B, F) cached features need nothing
        return features

    def set_mode() -> None:
        if params.mode == "linear_probe":
            network.head.train()
        else:
            set_train_mode(network)

    prepare_train: Prepare = augmented_in
    prepare_eval: Prepare = images_in

    net: nn.Module = network.model
    inputs = data.images.to(device) if cuda else data.images  # the whole store on the GPU when there is one
    if params.mode == "linear_probe":
        key = backbone_digest(network.backbone, {"data": data.fingerprint, "input": config["input"]})
        features = cached_features(
            network.backbone, inputs, images_in, cache, key, params.batch_size, params.feature_cache_keep
        )
        inputs = features.to(device)  # (N, F)
        net = network.head
        prepare_train = prepare_eval = features_in
    if params.compile and cuda:
        net = torch.compile(net)  # type: ignore[assignment]
    train_labels = data.labels[data.splits["train"]]
    weights = (
        class_weights(train_labels, len(data.classes)) if params.class_balance == "weighted_loss" else None
    )
    optimizer = make_optimizer(network, params)
    return Job(
        net=net,
        model=network.model,
        inputs=inputs,
        labels=data.labels.to(device),
        train_rows=data.splits["train"],
        val_rows=data.splits["val"],
        prepare_train=prepare_train,
        prepare_eval=prepare_eval,
        loss=nn.CrossEntropyLoss(weight=None if weights is None else weights.to(device)),
        optimizer=optimizer,
        scheduler=make_scheduler(optimizer, params),
        set_train_mode=set_mode,
        reseed=augment.reseed,
        autocast=torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext(),  # type: ignore[arg-type]
    )


def train(
    data: TrainData, params: TrainParams, seed: int, checkpoints: Path, live: Path, registry: Path
) -> tuple[nn.Module, dict[str, Any]]:
    """Build, train and return (best model on the CPU, its config.json content)."""
    torch.manual_seed(seed)
    self_supervised = (
        pretrain_backbone(data.images, params, seed, checkpoints / "pretrain", pick_device(params))
        if params.weights == "self_supervised"
        else None
    )
    network = build_network(params, len(data.classes), registry, self_supervised)
    config = model_config(network, data, params, seed)
    curve = []
    if params.learning_rate == "auto":  # a range test with the real job, then the job at its pick
        probe = make_job(network, data, replace(params, learning_rate=1.0), config, checkpoints / "features")
        curve = range_test(probe, params.batch_size, params.lr_finder_steps, seed)
        params = replace(params, learning_rate=pick_learning_rate(curve))
        config["learning_rate_found"] = params.learning_rate
        console.print(
            f"train: learning_rate auto -> {params.learning_rate:.3g} (range test, {len(curve)} steps)"
        )
    write_curve(curve, live)
    job = make_job(network, data, params, config, checkpoints / "features")
    settings = LoopSettings(
        epochs=params.epochs,
        batch_size=params.batch_size,
        patience=params.patience,
        balanced_sampling=params.class_balance == "sampler",
        seed=seed,
        checkpoints=checkpoints,
        live_dir=live,
        identity={"train": params.to_dict(), "seed": seed, "data": data.fingerprint},
    )
    loop = fit(job, settings)
    console.print(
        f"train: best val AUC {loop['best_auc']:.3f} at epoch {loop['best_epoch']} of {loop['epoch']}"
    )
    kept = select_weights(network.model, data, params.min_val_images_per_class, checkpoints)
    config["training_summary"] = summarise(loop, data, params) | kept
    return network.model.cpu().eval(), config


def main(params: dict[str, Any]) -> None:
    """Stage entry point (`radflow stage train`)."""
    settings = parse_section(params, "train", TrainParams)
    paths = project_paths(params)
    if settings.threads > 0:
        torch.set_num_threads(settings.threads)
    data = load_data(paths.preprocessed)
    model, config = train(
        data, settings, int(params["seed"]), paths.checkpoints, paths.train_live, paths.registry
    )
    config["data_profile"] = describe_store(paths.preprocessed)  # predict's out-of-distribution check
    save_model(model, config, paths.model)
