"""The simple, non-deep baseline every model is measured against: scikit-learn on intensity and texture
features of the same preprocessed images and the same splits.

Why it exists: a network that learned nothing still produces a report full of numbers. A linear model on
hand-made features (regional intensity spread, edges, small bright spots) is cheap, hard to get wrong, and
sees any finding that is not hidden in shape; if the network does not beat it, the report must say so.

Features per image (S, S) in [0, 1]: over the whole image and each cell of a `grid` x `grid` partition,
the mean, standard deviation, 5th/50th/95th percentiles, mean gradient magnitude, mean local standard
deviation and the mean and maximum of a white top-hat (bright details smaller than S / 16).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

STATISTICS = 10  # features per region (see the module docstring)
MIN_FOLDS_PER_CLASS = 2  # GroupKFold needs at least this many patients of every class


@dataclass(frozen=True)
class BaselineSettings:
    """How the baseline is built (params.yaml's `evaluate.baseline_*` keys)."""

    grid: int  # regions per side: 4 gives 16 cells + the whole image = 17 regions x 10 features
    max_train_images: int  # fit on at most this many training images (a seeded subsample beyond it)
    folds: int  # patient-grouped cross-validation folds that choose the regularisation strength


def _region_statistics(
    image: np.ndarray, gradient: np.ndarray, local_std: np.ndarray, tophat: np.ndarray
) -> tuple[float, ...]:
    """(STATISTICS,) features of one region; every input is the same region of its map."""
    low, mid, high = np.percentile(image, (5, 50, 95))
    return (
        image.mean(),
        image.std(),
        low,
        mid,
        high,
        gradient.mean(),
        local_std.mean(),
        tophat.mean(),
        tophat.max(),
        high - low,
    )


def image_features(images: np.ndarray, grid: int) -> np.ndarray:
    """(N, 1, S, S) float images in [0, 1] -> (N, (grid * grid + 1) * STATISTICS) float64 features."""
    n, size = images.shape[0], images.shape[-1]
    cells = [slice(round(i * size / grid), round((i + 1) * size / grid)) for i in range(grid)]
    spot = max(3, size // 16)  # top-hat structuring element: finds bright details smaller than this
    out = np.empty((n, (grid * grid + 1) * STATISTICS))
    for row in range(n):
        image = np.asarray(images[row, 0], dtype=np.float64)  # (S, S)
        gradient = np.hypot(ndimage.sobel(image, axis=0), ndimage.sobel(image, axis=1))
        mean = ndimage.uniform_filter(image, 5)
        local_std = np.sqrt(np.maximum(ndimage.uniform_filter(image**2, 5) - mean**2, 0.0))
        tophat = ndimage.white_tophat(image, size=spot)
        maps = (image, gradient, local_std, tophat)
        regions = [(slice(None), slice(None))] + [(r, c) for r in cells for c in cells]
        out[row] = np.concatenate([_region_statistics(*(m[region] for m in maps)) for region in regions])
    return out


def fit_baseline(
    features: np.ndarray, labels: np.ndarray, patients: np.ndarray, settings: BaselineSettings, seed: int
) -> Pipeline:
    """Standardised multinomial logistic regression, its strength chosen by patient-grouped CV.

    Images of one patient never sit on both sides of a CV fold, for the same reason splits are by patient.
    """
    rng = np.random.default_rng(seed)
    rows = np.arange(len(labels))
    if len(rows) > settings.max_train_images:
        rows = np.sort(rng.choice(rows, settings.max_train_images, replace=False))
    x, y, groups = features[rows], labels[rows], patients[rows]
    smallest_class = min(len(np.unique(groups[y == c])) for c in np.unique(y))
    folds = min(settings.folds, smallest_class)
    splits = list(GroupKFold(n_splits=folds).split(x, y, groups)) if folds >= MIN_FOLDS_PER_CLASS else 3
    model = make_pipeline(
        StandardScaler(),
        LogisticRegressionCV(Cs=8, cv=splits, max_iter=2000, scoring="neg_log_loss", random_state=seed),
    )
    with warnings.catch_warnings():  # scikit-learn 1.9 announces changed defaults we do not rely on
        warnings.simplefilter("ignore", FutureWarning)
        return model.fit(x, y)


def baseline_probabilities(model: Pipeline, features: np.ndarray, num_classes: int) -> np.ndarray:
    """(N, num_classes) probabilities in the data set's class order (a class absent from training gets 0)."""
    probs = np.zeros((len(features), num_classes))
    probs[:, model.classes_] = model.predict_proba(features)
    return probs
