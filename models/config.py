"""The architecture description shared by train, evaluate, predict and the registry."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from tasks.common.params import from_dict

ModelName = Literal["alexnet", "resnet18", "densenet121"]
Layout = Literal["torchvision", "original"]
Norm = Literal["lrn", "batchnorm", "batchnorm_fc", "none"]
Activation = Literal["relu", "leaky_relu"]
Head = Literal["flatten", "max", "attention"]


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a network; stored in config.json so a model file is self-describing.

    `layout`, `norm`, `activation`, `head`, `dropout` and `hidden_units` shape AlexNet only; the MONAI
    comparison networks (ResNet-18, DenseNet-121) use their own fixed design.
    """

    name: ModelName
    layout: Layout
    norm: Norm
    activation: Activation
    dropout: float
    hidden_units: int
    in_channels: int
    num_classes: int
    head: Head = "flatten"  # models saved before the key existed had the flatten head

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> ModelConfig:
        """Strict parse: an unknown field or a bad choice is a RadflowError naming the valid ones."""
        return from_dict(data, ModelConfig, where="architecture")
