"""The simple baseline (tasks.common.baseline) fitted on the train split and scored on val and test, so
every evaluation shows what a linear model on hand-made features sees in the same images."""

from __future__ import annotations

import numpy as np

from tasks.common.baseline import BaselineSettings, baseline_probabilities, fit_baseline, image_features
from tasks.common.scoring import TensorStore
from tasks.evaluate.evaluation import Scores
from tasks.evaluate.params import EvaluateParams


def baseline_scores(store: TensorStore, settings: EvaluateParams, seed: int) -> Scores:
    """Fit on (at most `baseline_max_train_images` of) the train split; (N, K) log-probabilities on val
    and test, which the metrics take as logits (the softmax of log-probabilities is the probabilities)."""
    config = BaselineSettings(
        settings.baseline_grid, settings.baseline_max_train_images, settings.baseline_folds
    )
    train = store.split("train")
    # Subsample before computing features (~10 ms an image at 96 px); fit_baseline then uses them all.
    rng = np.random.default_rng(seed)
    rows = np.arange(len(train))
    if len(rows) > config.max_train_images:
        rows = np.sort(rng.choice(rows, config.max_train_images, replace=False))
    train = train.iloc[rows]
    model = fit_baseline(
        image_features(store.images[train["row"].to_numpy()], config.grid),
        train["label_index"].to_numpy(dtype=int),
        train["patient_id"].to_numpy(),
        config,
        seed,
    )

    def log_probs(split: str) -> np.ndarray:
        features = image_features(store.images[store.split(split)["row"].to_numpy()], config.grid)
        probs = baseline_probabilities(model, features, len(store.classes))
        return np.log(np.maximum(probs, np.finfo(np.float64).tiny))  # a class absent from training: ~-708

    return Scores(val=log_probs("val"), test=log_probs("test"))
