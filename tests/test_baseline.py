"""The simple baseline sees what a linear model on intensity/texture features can see, and no more."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from tasks.common.baseline import BaselineSettings, baseline_probabilities, fit_baseline, image_features

SETTINGS = BaselineSettings(grid=4, max_train_images=5000, folds=3)


def spotted_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(n, 1, 32, 32) noise; label 1 adds one faint small bright spot somewhere in the left half."""
    labels = np.arange(n) % 2
    images = rng.uniform(0.2, 0.6, (n, 1, 32, 32))
    for row in np.flatnonzero(labels):
        y, x = rng.integers(4, 28), rng.integers(4, 12)
        images[row, 0, y - 1 : y + 2, x - 1 : x + 2] += 0.3
    return images.clip(0, 1), labels


def test_baseline_finds_a_small_bright_spot_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    images, labels = spotted_images(160, rng)
    features = image_features(images, SETTINGS.grid)
    assert features.shape == (160, 17 * 10)
    patients = np.arange(160) // 2
    train, test = np.arange(160) < 120, np.arange(160) >= 120
    model = fit_baseline(features[train], labels[train], patients[train], SETTINGS, seed=0)
    probs = baseline_probabilities(model, features[test], num_classes=2)
    assert probs.shape == (40, 2) and np.allclose(probs.sum(axis=1), 1)
    assert roc_auc_score(labels[test], probs[:, 1]) > 0.9
    shuffled = fit_baseline(
        features[train], rng.permutation(labels[train]), patients[train], SETTINGS, seed=0
    )
    chance = roc_auc_score(labels[test], baseline_probabilities(shuffled, features[test], 2)[:, 1])
    assert 0.2 < chance < 0.8


def test_a_class_missing_from_training_gets_probability_zero() -> None:
    rng = np.random.default_rng(1)
    images, labels = spotted_images(40, rng)
    features = image_features(images, 2)
    model = fit_baseline(features, labels * 2, np.arange(40), SETTINGS, seed=0)  # classes 0 and 2 only
    probs = baseline_probabilities(model, features, num_classes=3)
    assert np.all(probs[:, 1] == 0) and np.allclose(probs.sum(axis=1), 1)
