"""index.csv and classes.json of a hand-made preprocessed store (docs/CONTRACTS.md, preprocess).

Tests that build a store pixel by pixel (a signal a network must find) write its images themselves and
its index here, so the contract's columns are spelled once.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


def write_index(
    root: Path, labels: np.ndarray, splits: np.ndarray, classes: list[str], patients: np.ndarray, size: int
) -> None:
    """One row per image: `labels` (N,) class indices, `splits` (N,) split names, `patients` (N,) ints."""
    pd.DataFrame(
        {
            "row": np.arange(len(labels)),
            "image_id": [f"{i:016x}" for i in range(len(labels))],
            "patient_id": [f"P-{int(p):012x}" for p in patients],
            "label": np.array(classes)[labels],
            "label_index": labels,
            "split": splits,
        }
    ).to_csv(root / "index.csv", index=False)
    (root / "classes.json").write_text(json.dumps({"classes": classes, "image_size": size}))
