"""The `train` section of params.yaml as a strict dataclass (every key is documented in params.yaml)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from models.config import Activation, Head, Layout, ModelConfig, ModelName, Norm
from tasks.common.errors import RadflowError

PLACEMENT = ("store", "node_rank", "rendezvous")


@dataclass(frozen=True)
class TrainParams:
    """Hyperparameters of one training run; saved in checkpoints and config.json as resolved."""

    model: ModelName
    layout: Layout
    norm: Norm
    activation: Activation
    head: Head
    dropout: float
    hidden_units: int
    in_channels: int
    weights: str
    imagenet_path: str
    imagenet_sha256: str
    mode: Literal["linear_probe", "partial", "full"]
    trainable_blocks: int
    pretrained_lr_factor: float
    feature_cache_keep: int
    pretrain_epochs: int
    pretrain_batch_size: int
    pretrain_learning_rate: float
    pretrain_temperature: float
    epochs: int
    batch_size: int
    learning_rate: float | Literal["auto"]
    lr_finder_steps: int
    weight_decay: float
    optimizer: Literal["adamw", "sgd"]
    momentum: float
    warmup_epochs: int
    schedule: Literal["cosine", "step"]
    step_epochs: int
    step_gamma: float
    patience: int
    min_val_images_per_class: int
    class_balance: Literal["weighted_loss", "sampler", "none"]
    augment: bool
    flip: bool
    rotate_degrees: float
    zoom: float
    intensity_shift: float
    noise_std: float
    learned_min_loss_drop: float
    learned_min_val_auc: float
    device: Literal["auto", "cpu", "cuda"]
    compile: bool
    threads: int
    store: Literal["auto", "memory", "stream"]
    processes: int
    nodes: int
    node_rank: int
    rendezvous: str | None

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
            head=self.head,
        )

    def peak_learning_rate(self) -> float:
        """The learning rate as a number; `auto` is replaced by the range test's pick before training."""
        if isinstance(self.learning_rate, str):
            raise RadflowError("train.learning_rate=auto must be resolved by the range test before training")
        return self.learning_rate

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def identity(self) -> dict[str, Any]:
        """The settings that shape the trained weights: what a checkpoint must match to be resumed.

        Where the run happens (this node's rank, the rendezvous address) and where it keeps the store
        (memory or streamed: same batches) do not, so a run may resume on another node or memory budget.
        """
        return {key: value for key, value in asdict(self).items() if key not in PLACEMENT}
