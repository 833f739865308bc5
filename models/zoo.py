"""Build any configured network and expose the parts transfer learning needs (backbone, head, conv blocks).

The MONAI comparison networks are used as MONAI builds them; this module only knows where their
head and blocks are, so train, evaluate and Grad-CAM never special-case an architecture themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.networks.nets import DenseNet121, ResNet, resnet18
from torch import nn

from models.alexnet import AlexNet
from models.config import ModelConfig

Features = Callable[[torch.Tensor], torch.Tensor]


def build_model(architecture: dict[str, Any] | ModelConfig) -> nn.Module:
    """Freshly initialised network from config.json's `architecture` (or a ModelConfig)."""
    config = architecture if isinstance(architecture, ModelConfig) else ModelConfig.from_dict(architecture)
    if config.name == "resnet18":
        return resnet18(spatial_dims=2, n_input_channels=config.in_channels, num_classes=config.num_classes)
    if config.name == "densenet121":
        return DenseNet121(spatial_dims=2, in_channels=config.in_channels, out_channels=config.num_classes)
    return AlexNet(config)


def _modules(model: nn.Module, *names: str) -> list[nn.Module]:
    return [model.get_submodule(name) for name in names]


def split_backbone_head(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(backbone (B, C, S, S) -> (B, F) penultimate features, head: the final linear layer -> logits).

    The modules are the model's own (shared parameters), so training the head trains the model. The
    head is the one layer a linear probe fits; for AlexNet the backbone ends after FC7 (F = hidden_units).
    """
    if isinstance(model, AlexNet):
        *penultimate, last = model.classifier
        return nn.Sequential(model.features, model.pool, *penultimate), last
    if isinstance(model, ResNet):
        names = ("conv1", "bn1", "act", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool")
        return nn.Sequential(*_modules(model, *names), nn.Flatten(1)), model.get_submodule("fc")
    if isinstance(model, DenseNet121):
        top = ("features", "class_layers.relu", "class_layers.pool", "class_layers.flatten")
        return nn.Sequential(*_modules(model, *top)), model.get_submodule("class_layers.out")
    raise TypeError(f"no backbone/head split known for {type(model).__name__}")


def pretrain_encoder(model: nn.Module) -> tuple[nn.Module, Callable[[str], bool]]:
    """What self-supervised pretraining trains: (images -> (B, F) representation, which state-dict keys it
    covers).

    AlexNet: its conv layers, globally average-pooled (B, 256). Its fully connected layers are left out:
    their dropout makes two views of one image look no more alike than two different images (cosine
    0.33 vs 0.31 at initialisation), so the contrastive loss cannot start. ResNet/DenseNet: their own
    pooled backbone. The output layer is never pretrained.
    """
    if isinstance(model, AlexNet):
        pooled = nn.Sequential(model.features, nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        return pooled, lambda key: key.startswith("features.")
    backbone, head = split_backbone_head(model)
    head_ids = {id(p) for p in head.parameters()}
    head_keys = {name for name, p in model.named_parameters() if id(p) in head_ids}
    return backbone, lambda key: key not in head_keys


def top_layers(model: nn.Module) -> nn.Module:
    """Everything after the last conv block (AlexNet: the three FC layers); `partial` mode trains it."""
    if isinstance(model, AlexNet):
        return model.classifier
    if isinstance(model, ResNet):
        return model.get_submodule("fc")
    if isinstance(model, DenseNet121):
        return model.get_submodule("class_layers")
    raise TypeError(f"no top layers known for {type(model).__name__}")


def conv_blocks(model: nn.Module) -> list[nn.Module]:
    """The backbone's blocks in input-to-output order; `partial` mode unfreezes the last N of them.

    AlexNet: each conv with its norm/activation slot; ResNet: layer1..4; DenseNet: denseblock1..4
    (each with its following transition or final norm).
    """
    if isinstance(model, AlexNet):
        convs = [i for i, layer in enumerate(model.features) if isinstance(layer, nn.Conv2d)]
        return [nn.Sequential(model.features[i], model.features[i + 1]) for i in convs]
    if isinstance(model, ResNet):
        return _modules(model, "layer1", "layer2", "layer3", "layer4")
    if isinstance(model, DenseNet121):
        tails = ("transition1", "transition2", "transition3", "norm5")
        return [
            nn.Sequential(*_modules(model.features, f"denseblock{i + 1}", tail))
            for i, tail in enumerate(tails)
        ]
    raise TypeError(f"no conv blocks known for {type(model).__name__}")


def gradcam_layer(config: dict[str, Any]) -> str:
    """Name of the layer whose activations MONAI GradCAM should use: the last conv block's output."""
    name = ModelConfig.from_dict(config["architecture"]).name
    if name == "resnet18":
        return "layer4"
    if name == "densenet121":
        return "class_layers.relu"
    return "features.11"  # conv5's activation (or norm + activation) slot in either AlexNet layout
