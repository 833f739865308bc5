"""The training data's profile, stored in the model's config.json, so predict can tell an input unlike
anything the model was trained on (a CT slice handed to a chest X-ray model) and refuse to classify it.

Two parts, both non-identifying:
- header attributes (modality, body part, photometric interpretation): how many training images had
  each value. An input whose value the training data never had is out of distribution; an attribute
  the training data did not record (plain JPEGs carry no modality) is not compared.
- image statistics of the stored (1, S, S) tensors, the very input the network sees: the range the
  middle 98% of the training images span. An input further outside it than `margin` times its width
  is out of distribution.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from tasks.common.scoring import read_store

HEADER = ("modality", "body_part", "photometric")
STATISTICS = ("mean", "std", "dark", "bright", "edges")
PERCENTILES = (1.0, 99.0)  # the training range: robust to the odd outlier among thousands of images
MIN_WIDTH = (
    0.01  # a statistic (in image units, [0, 1]) that barely varies in training still gets this much room
)
CHUNK = 256  # images per statistics pass (memory only)


def image_statistics(images: np.ndarray) -> np.ndarray:
    """(N, 1, S, S) in [0, 1] -> (N, 5) float64, in STATISTICS order: mean, standard deviation, dark
    fraction (< 0.05, which counts a non-square image's padding), bright fraction (> 0.95), and edge
    strength (mean absolute difference between neighbouring pixels; noise and text score high)."""
    rows = []
    for start in range(0, len(images), CHUNK):
        chunk = np.asarray(images[start : start + CHUNK], dtype=np.float32)[:, 0]  # (B, S, S)
        flat = chunk.reshape(len(chunk), -1)
        edges = np.abs(np.diff(chunk, axis=1)).mean(axis=(1, 2)) + np.abs(np.diff(chunk, axis=2)).mean(
            axis=(1, 2)
        )
        rows.append(
            np.stack(
                [flat.mean(1), flat.std(1), (flat < 0.05).mean(1), (flat > 0.95).mean(1), edges / 2], axis=1
            )
        )
    return np.concatenate(rows).astype(np.float64) if rows else np.zeros((0, len(STATISTICS)))


def describe(attributes: dict[str, list[str]], images: np.ndarray) -> dict[str, Any]:
    """The profile of training images (N, 1, S, S) with their header attributes (N values each)."""
    statistics = image_statistics(images)
    low, high = np.percentile(statistics, PERCENTILES, axis=0) if len(statistics) else ([], [])
    return {
        "images": len(images),
        "header": {name: dict(Counter(v for v in attributes[name] if v)) for name in HEADER},
        "statistics": {
            name: [float(low[k]), float(high[k])] for k, name in enumerate(STATISTICS) if len(statistics)
        },
    }


def describe_store(folder: Path) -> dict[str, Any]:
    """The profile of the train split of a preprocessed store (what config.json carries as data_profile)."""
    store = read_store(folder)
    train = store.split("train")
    attributes = {
        name: train[name].astype(str).tolist() if name in train else [""] * len(train) for name in HEADER
    }
    return describe(attributes, store.images[train["row"].to_numpy()])


def unlike_training(
    profile: dict[str, Any], attributes: dict[str, str], statistics: np.ndarray, margin: float
) -> str:
    """Why one input (its header attributes and its (5,) image statistics) is out of distribution, or ""."""
    reasons = []
    for name in HEADER:
        seen = profile["header"].get(name, {})
        value = attributes.get(name, "")
        if value and seen and value not in seen:
            reasons.append(f"{name} {value} never seen in training ({', '.join(sorted(seen))})")
    for k, name in enumerate(STATISTICS):
        if name not in profile["statistics"]:
            continue
        low, high = profile["statistics"][name]
        room = margin * max(high - low, MIN_WIDTH)
        if not low - room <= statistics[k] <= high + room:
            reasons.append(
                f"image {name} {statistics[k]:.3f} outside the training range {low:.3f}-{high:.3f}"
            )
    return "; ".join(reasons)
