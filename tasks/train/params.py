"""The `train` section of params.yaml as a strict dataclass (every key is documented in params.yaml)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from models.config import Activation, Layout, ModelConfig, ModelName, Norm


@dataclass(frozen=True)
class TrainParams:
    """Hyperparameters of one training run; saved in checkpoints and config.json as resolved."""

    model: ModelName = "alexnet"
    layout: Layout = "torchvision"
    norm: Norm = "batchnorm"
    activation: Activation = "relu"
    dropout: float = 0.5
    hidden_units: int = 1024
    in_channels: int = 3
    weights: str = "none"
    imagenet_path: str = ""
    imagenet_sha256: str = "7be5be79"
    mode: Literal["linear_probe", "partial", "full"] = "full"
    trainable_blocks: int = 2
    pretrained_lr_factor: float = 0.1
    feature_cache_keep: int = 4
    epochs: int = 12
    batch_size: int = 32
    learning_rate: float = 0.001
    weight_decay: float = 0.0001
    optimizer: Literal["adamw", "sgd"] = "adamw"
    momentum: float = 0.9
    schedule: Literal["cosine", "step"] = "cosine"
    step_epochs: int = 10
    step_gamma: float = 0.1
    patience: int = 0
    class_balance: Literal["weighted_loss", "sampler", "none"] = "weighted_loss"
    augment: bool = True
    flip: bool = True
    rotate_degrees: float = 10.0
    zoom: float = 0.1
    intensity_shift: float = 0.05
    noise_std: float = 0.02
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compile: bool = False
    threads: int = 0

    def model_config(self, num_classes: int) -> ModelConfig:
        return ModelConfig(
            name=self.model,
            layout=self.layout,
            norm=self.norm,
            activation=self.activation,
            dropout=self.dropout,
            hidden_units=self.hidden_units,
            in_channels=self.in_channels,
            num_classes=num_classes,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
