"""The preprocessed store held in memory as one tensor, indexed by split; batch order and class weights."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tasks.common.errors import RadflowError
from tasks.common.scoring import read_store


@dataclass(frozen=True)
class TrainData:
    """All labelled images of the store: (N, 1, S, S) float16 images, (N,) int64 labels, split rows."""

    images: torch.Tensor
    labels: torch.Tensor
    splits: dict[str, torch.Tensor]  # split name -> (n,) row indices
    classes: list[str]
    image_size: int
    fingerprint: str  # SHA-256 of the store and its index: what a checkpoint or feature cache belongs to


def load_data(preprocessed: Path) -> TrainData:
    """Read the store once into RAM (a few MB to GB), so a batch is one tensor indexing operation."""
    store = read_store(preprocessed)
    index = store.index
    images = torch.from_numpy(np.array(store.images))  # (N, 1, S, S) float16, copied into RAM in one read
    splits = {
        name: torch.tensor(index.loc[index["split"] == name, "row"].to_numpy(), dtype=torch.long)
        for name in ("train", "val", "test")
    }
    if len(splits["train"]) == 0 or len(splits["val"]) == 0:
        raise RadflowError(
            f"{preprocessed / 'index.csv'} needs train and val rows; check preprocess fractions"
        )
    labels = torch.full((images.shape[0],), -1, dtype=torch.long)
    labels[torch.tensor(index["row"].to_numpy())] = torch.tensor(index["label_index"].to_numpy())
    # Fingerprint from what was just read (pixels and index), not from a second read of the files.
    digest = hashlib.sha256(images.numpy().data)
    digest.update(index.to_csv(index=False).encode())
    return TrainData(images, labels, splits, store.classes, images.shape[-1], digest.hexdigest())


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C,) inverse-frequency weights normalised to mean 1 (an absent class gets weight 0)."""
    counts = torch.bincount(labels, minlength=num_classes).float()
    weights = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp(min=1)), 0.0)
    return weights


def epoch_order(labels: torch.Tensor, balanced: bool, generator: torch.Generator) -> torch.Tensor:
    """Positions into the train split for one epoch: a permutation, or a class-balanced draw."""
    if not balanced:
        return torch.randperm(len(labels), generator=generator)
    per_sample = class_weights(labels, int(labels.max()) + 1)[labels]
    return torch.multinomial(per_sample, len(labels), replacement=True, generator=generator)
