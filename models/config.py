"""The architecture description shared by train, evaluate, predict and the registry."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from pydantic import Field

from tasks.common.params import parse, section

ModelName = Literal["alexnet", "resnet18", "densenet121"]
Layout = Literal["torchvision", "original"]
Norm = Literal["lrn", "batchnorm", "batchnorm_fc", "none"]
Activation = Literal["relu", "leaky_relu"]
Dropout = Annotated[float, Field(ge=0, lt=1)]  # 1 would drop every unit: the classifier sees nothing
Width = Annotated[int, Field(ge=1)]  # hidden units, input channels
Head = Literal["flatten", "max", "attention"]


@section("architecture")
class ModelConfig:
    """Everything needed to rebuild a network; stored in config.json so a model file is self-describing.

    `layout`, `norm`, `activation`, `head`, `dropout` and `hidden_units` shape AlexNet only; the MONAI
    comparison networks (ResNet-18, DenseNet-121) use their own fixed design.
    """

    name: ModelName
    layout: Layout
    norm: Norm
    activation: Activation
    dropout: Dropout
    hidden_units: Width
    in_channels: Width
    num_classes: Annotated[int, Field(ge=2)]
    head: Head = "flatten"  # models saved before the key existed had the flatten head

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> ModelConfig:
        """Strict parse: an unknown field or a bad choice is a RadflowError naming the valid ones."""
        return parse(data, ModelConfig)
