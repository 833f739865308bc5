"""Read the preprocessed tensor store that train, evaluate and promote score networks on
(models.inference runs a network over it)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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
