"""The training data's profile, stored in the model's config.json, so predict can tell an input unlike
anything the model was trained on (a CT slice handed to a chest X-ray model) and refuse to classify it.

Two parts, both non-identifying:
- header attributes (modality, body part, photometric interpretation): how many training images had
  each value. An input whose value the training data never had is out of distribution; an attribute
  the training data did not record (plain JPEGs carry no modality) is not compared.
- image statistics of the stored (1, S, S) tensors, the very input the network sees (inside the padding
  of non-square images): brightness, contrast, dark and bright shares, edge strength, and how far the
  intensity histogram and the coarse layout are from the training images' mean ones. Each has the range
  the middle 98% of the training images span; an input further outside it than `margin` times its
  width is out of distribution.

For the monitor (tasks.monitor), which tests whether arrivals drift from the training data as a whole,
it also keeps counts of context attributes that are no reason to refuse an image (manufacturer, pixel
spacing band) and each statistic's quantiles (0%, 1%, ..., 100%): its training distribution, compact.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from tasks.common.scoring import read_store

HEADER = ("modality", "body_part", "photometric")
CONTEXT = ("manufacturer", "spacing_band")  # drift is measured on these; an unseen value is no OOD reason
SPACING_BANDS = (0.1, 0.15, 0.2, 0.3, 0.5, 1.0)  # mm: band edges of the pixel spacing (detector, binning)
QUANTILES = 101  # quantiles kept per statistic: every percentile
STATISTICS = ("mean", "std", "dark", "bright", "edges", "histogram_distance", "layout_distance")
PERCENTILES = (1.0, 99.0)  # the training range: robust to the odd outlier among thousands of images
MIN_WIDTH = 0.01  # a statistic that barely varies in training still gets this much room (image units)
BINS = 16  # intensity histogram bins over [0, 1]
LAYOUT = 8  # the layout is the image averaged down to LAYOUT x LAYOUT


def _content(image: np.ndarray) -> np.ndarray:
    """(S, S) -> the box inside the black padding a non-square image got (the whole image if all black)."""
    rows, cols = np.flatnonzero(image.max(axis=1) > 0), np.flatnonzero(image.max(axis=0) > 0)
    if not len(rows):
        return image
    return image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def descriptors(images: Iterable[np.ndarray]) -> np.ndarray:
    """N images (1, S, S) in [0, 1] -> (N, 5 + BINS + LAYOUT**2), each over its content box: mean,
    standard deviation, dark (< 0.05) and bright (> 0.95) fractions, edge strength (mean absolute
    difference of neighbours: noise and text score high); its intensity histogram; its layout."""
    rows = []
    for image in images:
        box = _content(np.asarray(image, dtype=np.float32)[0])  # (h, w)
        edges = np.abs(np.diff(box, axis=0)).mean() if box.shape[0] > 1 else 0.0
        edges += np.abs(np.diff(box, axis=1)).mean() if box.shape[1] > 1 else 0.0
        histogram = np.histogram(box, bins=BINS, range=(0.0, 1.0))[0] / box.size
        layout = torch.nn.functional.adaptive_avg_pool2d(
            torch.from_numpy(np.ascontiguousarray(box))[None], LAYOUT
        )
        summary = [box.mean(), box.std(), (box < 0.05).mean(), (box > 0.95).mean(), edges / 2]
        rows.append(np.concatenate([summary, histogram, layout.numpy().ravel()]))
    return np.asarray(rows, dtype=np.float64)


def _statistics(described: np.ndarray, reference: dict[str, list[float]]) -> np.ndarray:
    """descriptors -> (N, len(STATISTICS)): the five summary values, then the distances of the histogram
    (L1) and of the layout (root mean square) from the training images' mean ones in `reference`."""
    histograms, layouts = described[:, 5 : 5 + BINS], described[:, 5 + BINS :]
    histogram_distance = np.abs(histograms - np.asarray(reference["histogram"])).sum(axis=1)
    layout_distance = np.sqrt(((layouts - np.asarray(reference["layout"])) ** 2).mean(axis=1))
    return np.column_stack([described[:, :5], histogram_distance, layout_distance])


def image_statistics(images: np.ndarray, profile: dict[str, Any]) -> np.ndarray:
    """(N, 1, S, S) in [0, 1] -> (N, len(STATISTICS)), measured against a profile's reference."""
    return _statistics(descriptors(images), profile["reference"])


def spacing_band(spacing_mm: float | None) -> str:
    """The pixel spacing's band, e.g. `0.15-0.2` mm ("" when unknown): a detector or binning change
    shows as a new band, while the exact value varies between calibrations of one device."""
    if spacing_mm is None or not np.isfinite(spacing_mm) or spacing_mm <= 0:
        return ""
    edges = (0.0, *SPACING_BANDS)
    for low, high in itertools.pairwise(edges):
        if spacing_mm < high:
            return f"{low:g}-{high:g}"
    return f">={SPACING_BANDS[-1]:g}"


def describe(attributes: dict[str, list[str]], images: Iterable[np.ndarray]) -> dict[str, Any]:
    """The profile of N >= 1 training images (1, S, S) with their header attributes (N values each;
    the CONTEXT ones where known)."""
    described = descriptors(images)
    reference = {
        "histogram": described[:, 5 : 5 + BINS].mean(axis=0).tolist(),
        "layout": described[:, 5 + BINS :].mean(axis=0).tolist(),
    }
    statistics = _statistics(described, reference)  # (N, len(STATISTICS))
    low, high = np.percentile(statistics, PERCENTILES, axis=0)
    quantiles = np.quantile(statistics, np.linspace(0.0, 1.0, QUANTILES), axis=0)  # (QUANTILES, 7)
    return {
        "images": len(described),
        "header": {name: dict(Counter(v for v in attributes[name] if v)) for name in HEADER},
        "context": {
            name: dict(Counter(v for v in attributes[name] if v)) for name in CONTEXT if name in attributes
        },
        "reference": reference,
        "statistics": {name: [float(low[k]), float(high[k])] for k, name in enumerate(STATISTICS)},
        "quantiles": {name: quantiles[:, k].tolist() for k, name in enumerate(STATISTICS)},
    }


def describe_store(folder: Path) -> dict[str, Any]:
    """The profile of the train split of a preprocessed store (what config.json carries as data_profile)."""
    store = read_store(folder)
    train = store.split("train")
    attributes = {
        name: train[name].astype(str).tolist() if name in train else [""] * len(train) for name in HEADER
    }
    if "manufacturer" in train:
        attributes["manufacturer"] = train["manufacturer"].astype(str).tolist()
    if "spacing_row" in train:
        spacings = pd.to_numeric(train["spacing_row"], errors="coerce")
        attributes["spacing_band"] = [spacing_band(v) for v in spacings]
    return describe(attributes, (store.images[row] for row in train["row"]))  # one at a time from the memmap


def unlike_training(
    profile: dict[str, Any], attributes: dict[str, str], statistics: np.ndarray, margin: float
) -> str:
    """Why one input (its header attributes, its image_statistics) is out of distribution, or ""."""
    reasons = []
    for name in HEADER:
        seen = profile["header"].get(name, {})
        value = attributes.get(name, "")
        if value and seen and value not in seen:
            reasons.append(f"{name} {value} never seen in training ({', '.join(sorted(seen))})")
    for k, name in enumerate(STATISTICS):
        low, high = profile["statistics"][name]
        room = margin * max(high - low, MIN_WIDTH)
        if not low - room <= statistics[k] <= high + room:
            reasons.append(
                f"image {name} {statistics[k]:.3f} outside the training range {low:.3f}-{high:.3f}"
            )
    return "; ".join(reasons)
