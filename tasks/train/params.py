"""The `train` section of params.yaml as a strict, range-checked section (every key is documented in
params.yaml)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from models.config import Activation, Dropout, Head, Layout, ModelConfig, ModelName, Norm, Width
from tasks.common.errors import RadflowError
from tasks.common.params import InvalidValue, Seed, section

PLACEMENT = ("store", "node_rank", "rendezvous")
Count = Annotated[int, Field(ge=0)]  # 0 allowed: off, none, or the default it names
Positive = Annotated[int, Field(ge=1)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Rate = Annotated[float, Field(gt=0, le=1)]  # a learning rate: the range test sweeps up to 1
WEIGHTS = "none | imagenet | self_supervised | registry:<version|champion>"


@section("train")
class TrainParams:
    """Hyperparameters of one training run; saved in checkpoints and config.json as resolved."""

    model: ModelName
    layout: Layout
    norm: Norm
    activation: Activation
    head: Head
    dropout: Dropout
    hidden_units: Width
    in_channels: Width
    weights: Annotated[
        str, Field(pattern=r"^(none|imagenet|self_supervised|registry:.+)$", description=WEIGHTS)
    ]
    imagenet_path: Annotated[str, Field(description='a checkpoint file, or "" for the torch hub cache')]
    imagenet_sha256: Annotated[
        str,
        # only a full digest pins the exact file: torchvision's 8 hex digits are 32 bits, cheap to forge
        Field(pattern=r"^[0-9a-fA-F]{64}$", description="the checkpoint's full SHA-256 (64 hex digits)"),
    ]
    mode: Literal["linear_probe", "partial", "full"]
    trainable_blocks: Annotated[int, Field(ge=0, le=5)]  # AlexNet has 5 conv blocks, ResNet/DenseNet 4
    pretrained_lr_factor: Fraction
    feature_cache_keep: Count
    pretrain_epochs: Positive
    pretrain_batch_size: Annotated[int, Field(ge=2)]  # NT-Xent: the other images are the negatives
    pretrain_learning_rate: Rate
    pretrain_temperature: Annotated[float, Field(gt=0, le=10)]
    epochs: Positive
    seed: Seed | None  # training-only seed (init, order, augmentation); null = the global seed
    batch_size: Positive
    learning_rate: Rate | Literal["auto"]
    lr_finder_steps: Annotated[int, Field(ge=2)]
    weight_decay: Fraction
    optimizer: Literal["adamw", "sgd"]
    momentum: Annotated[float, Field(ge=0, lt=1)]
    warmup_epochs: Count
    schedule: Literal["cosine", "step"]
    step_epochs: Positive
    step_gamma: Rate
    patience: Count
    min_val_images_per_class: Count
    class_balance: Literal["weighted_loss", "sampler", "none"]
    augment: bool
    flip: bool
    rotate_degrees: Annotated[float, Field(ge=0, le=180)]
    zoom: Annotated[float, Field(ge=0, lt=1)]
    intensity_shift: Fraction
    noise_std: Fraction
    learned_min_loss_drop: Annotated[float, Field(ge=0, lt=1)]
    learned_min_val_auc: Fraction
    device: Literal["auto", "cpu", "cuda"]
    compile: bool
    threads: Count
    store: Literal["auto", "memory", "stream"]
    processes: Positive
    nodes: Positive
    node_rank: Count
    rendezvous: Annotated[
        str | None,
        Field(pattern=r"^.+:[0-9]+$", description="node 0's host:port (e.g. 10.0.0.5:29500), or null"),
    ]

    @model_validator(mode="after")
    def _fit_together(self) -> TrainParams:
        if self.weights == "imagenet" and (self.model, self.in_channels) != ("alexnet", 3):
            raise InvalidValue(
                "weights",
                self.weights,
                f"imagenet only with train.model=alexnet and train.in_channels=3 (got {self.model}, "
                f"{self.in_channels}); else {WEIGHTS.replace('imagenet | ', '')}",
            )
        if self.node_rank >= self.nodes:
            raise InvalidValue("node_rank", self.node_rank, f"0 .. train.nodes - 1 (0 .. {self.nodes - 1})")
        if self.nodes > 1 and self.rendezvous is None:
            raise InvalidValue(
                "rendezvous", None, "node 0's host:port (e.g. 10.0.0.5:29500) when train.nodes > 1"
            )
        ranks = self.processes * self.nodes
        if self.batch_size % ranks:
            raise InvalidValue(
                "batch_size",
                self.batch_size,
                f"a multiple of train.processes x train.nodes ({ranks}): each process takes an equal share",
            )
        return self

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

    def training_seed(self, global_seed: int) -> int:
        """The seed of everything random in training; the global seed (which also draws the split) when
        `seed` is null. A study varies this one, so every run is tested on the same patients."""
        return global_seed if self.seed is None else self.seed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def identity(self) -> dict[str, Any]:
        """The settings that shape the trained weights: what a checkpoint must match to be resumed.

        Where the run happens (this node's rank, the rendezvous address) and where it keeps the store
        (memory or streamed: same batches) do not, so a run may resume on another node or memory budget.
        """
        return {key: value for key, value in asdict(self).items() if key not in PLACEMENT}
