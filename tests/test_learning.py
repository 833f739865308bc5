"""The default recipe learns what a linear model can see, says so when it does not, and pretrains offline.

Each test trains the network params.yaml describes (tests/defaults.py) on a small generated store.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from bench.learning_tasks import TASKS, TaskData, make_task, patient_splits, write_store
from models import load_model
from models.inference import predict_logits
from tasks.common.metrics import roc_auc
from tasks.common.scoring import read_store
from tasks.evaluate.checks import data_caveats
from tasks.preprocess.stage import PreprocessParams
from tasks.train.data import load_data
from tasks.train.distributed import SINGLE
from tasks.train.lr_finder import pick_learning_rate
from tasks.train.pretrain import nt_xent
from tasks.train.selection import thin_val_reason
from tasks.train.stage import main
from tasks.train.summary import chance_loss, training_summary
from tests.defaults import settings, train_params
from tests.store_index import write_index

SIZE = 64
FOCAL_EPOCHS = 15


def write_linear_store(root: Path, patients: int = 48, shuffle_labels: bool = False) -> None:
    """A store a linear model on pixels solves: a faint brighter band (fixed place) on noisy backgrounds.

    Two images per patient, split by patient; per-image exposure and noise differ, so the network has
    to find the band, not a global brightness.
    """
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(patients) % 2, 2)  # (N,) two images per patient
    n = len(labels)
    exposure = rng.uniform(0.3, 0.5, (n, 1, 1, 1))
    images = exposure + rng.normal(0.0, 0.05, (n, 1, SIZE, SIZE))
    images[labels == 1, :, 24:40, :] += 0.15
    split_of_patient = np.array(["train", "train", "train", "train", "val", "test"])[
        np.arange(patients) // 2 % 6
    ]
    if shuffle_labels:
        labels = np.repeat(rng.permutation(labels[::2]), 2)  # a patient's images keep one label
    root.mkdir(parents=True)
    np.save(root / "images.npy", images.clip(0, 1).astype(np.float16))
    write_index(root, labels, np.repeat(split_of_patient, 2), ["finding", "normal"], np.arange(n) // 2, SIZE)


def write_focal_store(root: Path, patients: int = 64) -> None:
    """A small focal-finding store: a 3 x 3 px spot, brighter than anything else, somewhere different in
    every image of a patient with the finding, on noisy backgrounds of per-image exposure.

    What a radiologist circles, at the training size: the network has to find a few pixels anywhere, not
    learn a place or a global brightness (the spot moves the image mean by ~0.001).
    """
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(patients) % 2, 2)  # (N,) two images per patient; 0 = finding
    n = len(labels)
    images = rng.uniform(0.3, 0.5, (n, 1, 1, 1)) + rng.normal(0.0, 0.03, (n, 1, SIZE, SIZE))
    for row in np.flatnonzero(labels == 0):
        y, x = rng.integers(8, SIZE - 11, 2)
        images[row, 0, y : y + 3, x : x + 3] += 0.35
    split_of_patient = np.array(["train", "train", "train", "train", "val", "test"])[
        np.arange(patients) // 2 % 6
    ]
    root.mkdir(parents=True)
    np.save(root / "images.npy", images.clip(0, None).astype(np.float16))
    write_index(root, labels, np.repeat(split_of_patient, 2), ["finding", "normal"], np.arange(n) // 2, SIZE)


def project(tmp_path: Path, store: Path, **train: Any) -> dict[str, Any]:
    """params for a run on `store` with outputs under tmp_path: the default recipe plus `train` changes."""
    paths = {
        key: str(tmp_path / key)
        for key in ("ingested", "private", "evaluation", "promotion", "registry", "monitor")
    }
    paths |= {
        "preprocessed": str(store),
        "model": str(tmp_path / "model"),
        "checkpoints": str(tmp_path / "checkpoints"),
        "train_live": str(tmp_path / "live"),
    }
    return {"seed": 0, "paths": paths, "train": train_params(threads=1, **train).to_dict()}


def test_chance_loss_is_ln_k_when_balanced_and_the_prior_entropy_otherwise() -> None:
    labels = torch.tensor([0, 0, 0, 1])
    assert chance_loss(labels, 3, balanced=True) == pytest.approx(math.log(2))  # class 2 absent
    assert chance_loss(labels, 2, balanced=False) == pytest.approx(
        -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    )


def test_summary_flags_a_flat_loss_and_a_chance_val_auc() -> None:
    flat = {"history": [{"train_loss": 0.694, "val_auc": a} for a in (0.5, 0.55, 0.52)], "best_epoch": 2}
    summary = training_summary(flat, math.log(2), 2, min_loss_drop=0.05, min_val_auc=0.6)
    assert not summary["learned"] and "training loss never fell" in summary["reason"]
    assert "validation AUC 0.550" in summary["reason"] and summary["epochs_run"] == 3
    falling = {
        "history": [{"train_loss": 0.69 - 0.2 * i, "val_auc": 0.7 + 0.1 * i} for i in range(3)],
        "best_epoch": 3,
    }
    good = training_summary(falling, math.log(2), 2, min_loss_drop=0.05, min_val_auc=0.6)
    assert (
        good["learned"]
        and good["best_val_auc"] == pytest.approx(0.9)
        and good["ln_k"] == pytest.approx(math.log(2))
    )


def test_nt_xent_is_low_for_matching_views_and_ln_2b_minus_1_for_identical_ones() -> None:
    z = torch.nn.functional.one_hot(torch.arange(4), 8).float()
    assert nt_xent(z, z, temperature=0.1) < 0.01  # each view's partner is the only similar one
    same = torch.ones(4, 8)
    assert nt_xent(same, same, temperature=0.1) == pytest.approx(math.log(7), rel=1e-4)


@pytest.mark.slow
def test_default_recipe_fits_a_task_a_linear_model_solves(tmp_path: Path) -> None:
    write_linear_store(tmp_path / "store")
    params = project(tmp_path, tmp_path / "store", epochs=12)
    main(params)
    model, config = load_model(Path(params["paths"]["model"]))
    summary = config["training_summary"]
    assert summary["learned"], summary["reason"]
    assert summary["lowest_train_loss"] < 0.5 * math.log(2)
    assert summary["selected"] == "last_epoch"  # 8 val images a class: too few to choose an epoch by
    last = torch.load(Path(params["paths"]["checkpoints"]) / "last.pt", weights_only=True)["model"]
    saved = load_file(str(Path(params["paths"]["model"]) / "model.safetensors"))
    assert saved.keys() == last.keys() and all(torch.equal(saved[k], last[k]) for k in saved)
    data = load_data(tmp_path / "store", "memory", torch.device("cpu"), 1, SINGLE)
    test = data.splits["test"].numpy()
    logits = predict_logits(model, config, np.asarray(data.images.source), test, 32)
    assert roc_auc(data.labels[test].numpy(), logits) > 0.9


@pytest.mark.slow
def test_default_recipe_finds_a_3_px_spot_anywhere(tmp_path: Path) -> None:
    """The default recipe learns a small focal finding: training loss well below ln 2 and test AUC above
    a floor, on 20 test images (10 patients) it never saw."""
    write_focal_store(tmp_path / "store")
    params = project(tmp_path, tmp_path / "store", epochs=FOCAL_EPOCHS)
    main(params)
    model, config = load_model(Path(params["paths"]["model"]))
    summary = config["training_summary"]
    assert summary["learned"], summary["reason"]
    assert summary["lowest_train_loss"] < 0.5 * math.log(2), summary
    data = load_data(tmp_path / "store", "memory", torch.device("cpu"), 1, SINGLE)
    test = data.splits["test"].numpy()
    logits = predict_logits(model, config, np.asarray(data.images.source), test, 32)
    assert roc_auc(data.labels[test].numpy(), logits) > 0.85


@pytest.mark.slow
def test_training_on_shuffled_labels_is_flagged_as_not_learned(tmp_path: Path, capsys: Any) -> None:
    write_linear_store(tmp_path / "store", shuffle_labels=True)
    main(project(tmp_path, tmp_path / "store", epochs=12))
    summary = json.loads((tmp_path / "model" / "config.json").read_text())["training_summary"]
    assert not summary["learned"]
    assert "WARNING: training did not learn" in capsys.readouterr().err


def test_learning_tasks_make_patient_split_stores_at_tiny_size() -> None:
    window = settings("preprocess", PreprocessParams).transform_settings(32)
    data = make_task(TASKS["brain_lesion"], patients=8, images_per_patient=2, settings=window, seed=1)
    assert data.images.shape == (16, 1, 32, 32) and data.images.dtype == np.float16
    assert float(data.images.min()) >= 0.0 and float(data.images.max()) <= window.ceiling
    by_patient = pd.DataFrame({"patient": data.patients, "split": data.splits, "label": data.labels})
    assert (by_patient.groupby("patient")[["split", "label"]].nunique() == 1).all().all()
    assert set(data.splits) == {"train", "val", "test"} and set(data.labels) == {0, 1}


@pytest.mark.slow
def test_self_supervised_pretraining_runs_is_cached_and_reused(tmp_path: Path, capsys: Any) -> None:
    write_linear_store(tmp_path / "store", patients=24)
    tiny = {"weights": "self_supervised", "epochs": 1, "pretrain_epochs": 2, "pretrain_batch_size": 16}
    first = project(tmp_path / "first", tmp_path / "store", **tiny)
    first["paths"]["checkpoints"] = str(tmp_path / "checkpoints")
    main(first)
    cached = list((tmp_path / "checkpoints" / "pretrain").glob("pretrain-*.safetensors"))
    assert len(cached) == 1 and "epoch 2/2" in capsys.readouterr().err
    pretrained = load_file(str(cached[0]))
    assert "features.0.weight" in pretrained and not any(key.startswith("classifier") for key in pretrained)
    inode = cached[0].stat().st_ino
    # A retrain with other fine-tuning settings on the same images reuses the backbone, untouched.
    second = project(tmp_path / "second", tmp_path / "store", **tiny | {"learning_rate": 0.0005})
    second["paths"]["checkpoints"] = str(tmp_path / "checkpoints")
    main(second)
    err = capsys.readouterr().err
    assert "reusing" in err and "epoch 1/2" not in err
    assert cached[0].stat().st_ino == inode


def test_range_test_pick_is_a_tenth_of_the_minimum_or_the_stable_edge_without_descent() -> None:
    rates = [10.0**e for e in range(-7, 1)]  # 1e-7 .. 1
    falling = (0.7, 0.6, 0.5, 0.4, 0.3, 0.4, 0.9, 2.0)  # smoothed loss, lowest at 1e-3
    assert pick_learning_rate([(r, 0.0, s) for r, s in zip(rates, falling, strict=True)]) == pytest.approx(
        1e-4
    )
    flat = (0.7, 0.71, 0.71, 0.72, 0.74, 0.76, 1.3, 1.5)  # never falls; within 10 % of 0.7 up to 1e-2
    assert pick_learning_rate([(r, 0.0, s) for r, s in zip(rates, flat, strict=True)]) == pytest.approx(1e-3)


def test_a_val_split_like_round_ones_rare_task_is_flagged_by_train_and_evaluate(tmp_path: Path) -> None:
    """100 patients x 3 images at 20 % prevalence: 3 positive val patients, 9 images (round 1's split)."""
    rng = np.random.default_rng(0)
    patient_labels = (np.arange(100) >= 20).astype(int)  # 20 "finding" (0), 80 "normal" (1)
    splits = np.repeat(patient_splits(patient_labels, rng), 3)
    labels = np.repeat(patient_labels, 3)
    patients = np.repeat([f"P-{p:04d}" for p in range(100)], 3)
    write_store(TaskData(np.zeros((300, 1, 8, 8)), labels, patients, splits), tmp_path / "store")
    caveats = data_caveats(read_store(tmp_path / "store"), negative_index=1, min_per_side=10)
    assert any("the val split holds 36 negative and 9 abnormal images" in c for c in caveats)
    reason = thin_val_reason(
        load_data(tmp_path / "store", "memory", torch.device("cpu"), 1, SINGLE), minimum=20
    )
    assert reason is not None and "only 9 finding" in reason and "last epoch" in reason
    assert (
        thin_val_reason(load_data(tmp_path / "store", "memory", torch.device("cpu"), 1, SINGLE), minimum=9)
        is None
    )


def test_the_suites_pooled_paired_interval_excludes_zero_only_for_a_real_difference() -> None:
    from bench.bench_learning import SeedRun, judged, pooled_difference

    rng = np.random.default_rng(0)
    runs = []
    for _ in range(3):  # three seeds, 20 test patients of 2 images each
        labels = np.repeat(np.arange(20) % 2, 2)
        perfect = np.column_stack([1.0 - labels, labels]).astype(float)
        noise = rng.normal(size=(40, 2))
        runs.append(SeedRun(labels, np.repeat(np.arange(20), 2), noise, {"good": perfect}, {}, 0.5))
    point, ci = pooled_difference(runs, "good", "baseline", samples=200, seed=0)
    assert point > 0.2 and judged(ci) == "better"
    runs_tied = [SeedRun(r.labels, r.patients, r.baseline, {"same": r.baseline}, {}, 0.5) for r in runs]
    point, ci = pooled_difference(runs_tied, "same", "baseline", samples=200, seed=0)
    assert point == 0 and ci == [0.0, 0.0] and judged(ci) == "tie"
