"""Read the preprocessed tensor store and run a trained network over it: shared by train (reading),
evaluate, promote and predict."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

import models
from tasks.common.errors import RadflowError


@dataclass(frozen=True)
class TensorStore:
    """preprocess's outputs: (N, 1, S, S) float16 images (memory-mapped), their index and class names."""

    images: np.ndarray
    index: pd.DataFrame
    classes: list[str]
    # classes.json's account of patients and splits (patients_recognised, split_notes...), for the report
    splits: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> pd.DataFrame:
        """Index rows of one split, in store order; a missing split is a configuration error."""
        rows = self.index[self.index["split"] == name]
        if rows.empty:
            raise RadflowError(
                f"the {name!r} split is empty in the preprocessed index; "
                "check preprocess.val_fraction / preprocess.test_fraction and the number of patients"
            )
        return rows


def read_store(folder: Path) -> TensorStore:
    """Open images.npy (memory-mapped), index.csv and classes.json written by preprocess."""
    needed = [folder / name for name in ("images.npy", "index.csv", "classes.json")]
    missing = [str(path) for path in needed if not path.exists()]
    if missing:
        raise RadflowError(
            f"preprocessed store incomplete, missing: {missing}; run `radflow stage preprocess`"
        )
    index = pd.read_csv(
        folder / "index.csv", dtype={"patient_id": str, "image_id": str}, keep_default_na=False
    )
    described = json.loads((folder / "classes.json").read_text())
    splits = {key: value for key, value in described.items() if key not in ("classes", "image_size")}
    return TensorStore(np.load(folder / "images.npy", mmap_mode="r"), index, described["classes"], splits)


def check_classes(config: dict, classes: list[str]) -> None:
    """A model can only be scored on data labelled with the same class list it was trained on."""
    if list(config["classes"]) != list(classes):
        raise RadflowError(
            f"model classes {config['classes']} differ from the data's classes {classes}; "
            "retrain on this data set or point paths.preprocessed at the matching store"
        )


def fit_size(batch: torch.Tensor, size: int) -> torch.Tensor:
    """Resize (B, 1, S, S) to the model's input side when the store was built at another size."""
    if batch.shape[-1] == size:
        return batch
    return torch.nn.functional.interpolate(batch, size=(size, size), mode="bilinear", antialias=True)


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module, config: dict, images: np.ndarray, rows: np.ndarray, batch_size: int
) -> np.ndarray:
    """Logits (len(rows), K) float64 for images[rows]; images is (N, 1, S, S) in [0, 1].

    Logits, not probabilities, leave the network: every score downstream (tasks.common.operating) is
    computed from them at full precision.
    """
    model.eval()
    outputs = []
    for start in range(0, len(rows), batch_size):
        chunk = np.asarray(images[rows[start : start + batch_size]], dtype=np.float32)  # (B, 1, S, S)
        batch = fit_size(torch.from_numpy(chunk), int(config["image_size"]))
        logits = model(models.to_model_input(batch, config))  # (B, K)
        outputs.append(logits.double().numpy())
    if not outputs:
        return np.zeros((0, len(config["classes"])))
    return np.concatenate(outputs)
