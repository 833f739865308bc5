"""The network for a run: architecture, initial weights, which parts train, and its optimiser."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from safetensors.torch import load_file
from torch import nn

from models import build_model, conv_blocks, split_backbone_head, top_layers
from models.config import ModelConfig
from models.registry import Registry
from models.weights import LoadReport, load_imagenet, load_matching, load_registry_weights
from tasks.common.errors import RadflowError
from tasks.train.params import TrainParams

console = Console(stderr=True)
REGISTRY_PREFIX = "registry:"


@dataclass
class Network:
    """The model split into a backbone (B, C, S, S) -> (B, F) and an output layer (B, F) -> (B, classes)."""

    model: nn.Module
    backbone: nn.Module
    head: nn.Module
    config: ModelConfig
    pretrained: bool  # initial backbone weights came from ImageNet or the registry


def initial_weights(
    model: nn.Module, params: TrainParams, registry_root: Path, self_supervised: Path | None = None
) -> LoadReport | None:
    """Load the configured starting weights into `model`; None for `weights: none`.

    `self_supervised` is the pretrained backbone file `tasks.train.pretrain` made for this data set.
    """
    if params.weights == "none":
        return None
    if params.weights == "self_supervised":
        if self_supervised is None:
            raise RadflowError("train.weights=self_supervised needs the pretrained backbone file")
        return load_matching(model, load_file(str(self_supervised)))
    if params.weights == "imagenet":  # TrainParams checked: AlexNet with 3 input channels
        return load_imagenet(
            model, Path(params.imagenet_path) if params.imagenet_path else None, params.imagenet_sha256
        )
    # registry:<version|champion>, the one form left (TrainParams refuses any other)
    registered = Registry(registry_root).load(params.weights.removeprefix(REGISTRY_PREFIX))
    return load_registry_weights(model, registered.path)


def build_network(
    params: TrainParams, num_classes: int, registry_root: Path, self_supervised: Path | None = None
) -> Network:
    """Build, initialise and freeze according to `params.mode`."""
    config = params.model_config(num_classes)
    model = build_model(config)
    report = initial_weights(model, params, registry_root, self_supervised)
    if report is not None:
        console.print(report.describe(params.weights))
    backbone, head = split_backbone_head(model)
    trainable: list[nn.Module] = [model]
    if params.mode == "linear_probe":
        trainable = [head]
    elif params.mode == "partial":
        blocks = conv_blocks(model)
        if not 0 <= params.trainable_blocks <= len(blocks):
            raise RadflowError(f"train.trainable_blocks must be 0..{len(blocks)} for {params.model}")
        trainable = [top_layers(model), *blocks[len(blocks) - params.trainable_blocks :]]
    model.requires_grad_(False)
    for module in trainable:
        module.requires_grad_(True)
    return Network(model, backbone, head, config, pretrained=report is not None)


def set_train_mode(network: Network, head_only: bool = False) -> None:
    """Train mode, except fully frozen layers stay in eval so their batch-norm statistics stay put.

    `head_only` (linear probe, which trains the head on cached features): the head alone.
    """
    if head_only:
        network.head.train()
        return
    network.model.train()
    for module in network.model.modules():
        own = list(module.parameters(recurse=False))
        if own and not any(p.requires_grad for p in own):
            module.eval()


def make_optimizer(network: Network, params: TrainParams) -> torch.optim.Optimizer:
    """The output layer at the full learning rate; pretrained layers at `pretrained_lr_factor` times it."""
    head_ids = {id(p) for p in network.head.parameters()}
    trainable = [p for p in network.model.parameters() if p.requires_grad]
    head = [p for p in trainable if id(p) in head_ids]
    body = [p for p in trainable if id(p) not in head_ids]
    peak = params.peak_learning_rate()
    body_lr = peak * (params.pretrained_lr_factor if network.pretrained else 1.0)
    groups = [{"params": head, "lr": peak}, {"params": body, "lr": body_lr}]
    groups = [group for group in groups if group["params"]]
    # torch's fused kernels (CPU and CUDA): one pass over all parameters instead of a dozen small ops
    # per tensor. On 2 CPU cores AdamW's default loop took as long as AlexNet's forward and backward
    # at 96 px (~120 ms a step); fused, ~10 ms.
    if params.optimizer == "sgd":
        return torch.optim.SGD(
            groups, momentum=params.momentum, weight_decay=params.weight_decay, nesterov=True, fused=True
        )
    return torch.optim.AdamW(groups, weight_decay=params.weight_decay, fused=True)
