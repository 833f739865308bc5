"""Train stage on a tiny synthetic store: outputs, transfer modes, feature cache, kill-and-resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from torch import nn

from models import load_model, to_model_input
from tasks.train.data import Rows
from tasks.train.features import cached_features
from tasks.train.network import build_network
from tasks.train.stage import main
from tests.defaults import train_params
from tests.store_index import write_index

SIZE = 64
# Small and quick: 1-channel AlexNet with a narrow head, single thread for bitwise-repeatable runs.
TINY = {"in_channels": 1, "hidden_units": 64, "epochs": 2, "batch_size": 8, "threads": 1}


def write_store(root: Path, per_class: int = 16) -> None:
    """A preprocessed store (images.npy, index.csv, classes.json) with a learnable bright-square signal."""
    rng = np.random.default_rng(0)
    n = 2 * per_class
    images = rng.uniform(0.0, 0.3, (n, 1, SIZE, SIZE)).astype(np.float16)
    labels = np.arange(n) % 2
    images[labels == 1, :, 20:40, 20:40] += np.float16(0.6)
    splits = np.array(["train", "train", "val", "test"])[np.arange(n) // 2 % 4]
    root.mkdir(parents=True)
    np.save(root / "images.npy", images)
    write_index(root, labels, splits, ["effusion", "normal"], np.arange(n) // 2, SIZE)


def project(tmp_path: Path, name: str = "run", **train: Any) -> dict[str, Any]:
    """params for a run whose outputs live under tmp_path/name (the store is shared)."""
    if not (tmp_path / "pre").exists():
        write_store(tmp_path / "pre")
    out = tmp_path / name
    keys = ("ingested", "private", "evaluation", "promotion", "registry", "monitor")
    paths = {key: str(out / key) for key in keys}
    paths |= {
        "preprocessed": str(tmp_path / "pre"),
        "model": str(out / "model"),
        "checkpoints": str(out / "checkpoints"),
        "train_live": str(out / "live"),
    }
    return {"seed": 3, "paths": paths, "train": train_params(**(TINY | train)).to_dict()}


def test_train_writes_a_loadable_model(tmp_path: Path) -> None:
    params = project(tmp_path)
    main(params)
    model, config = load_model(Path(params["paths"]["model"]))
    assert config["classes"] == ["effusion", "normal"] and config["image_size"] == SIZE
    assert config["input"]["channels"] == 1 and config["train"]["epochs"] == 2 and config["seed"] == 3
    batch = torch.rand(2, 1, SIZE, SIZE)
    assert model(to_model_input(batch, config)).shape == (2, 2)
    live = Path(params["paths"]["train_live"]) / "metrics.json"
    assert {"train_loss", "val_auc", "learning_rate", "step"} <= set(json.loads(live.read_text()))
    # Rerun of a finished run (as `dvc repro -f` does, after clearing the outputs): same model, curves back.
    shutil.rmtree(params["paths"]["train_live"])
    shutil.rmtree(params["paths"]["model"])
    main(params)
    assert json.loads(live.read_text())["step"] == 1
    assert torch.equal(
        load_model(Path(params["paths"]["model"]))[0](to_model_input(batch, config)),
        model(to_model_input(batch, config)),
    )


@pytest.mark.parametrize(
    "variant",
    [
        {"mode": "partial", "trainable_blocks": 1, "optimizer": "sgd", "schedule": "step", "epochs": 3},
        # The 2012 layout with LRN learns slower: 3 epochs leave its loss flat, 8 bring it 0.67 -> 0.40.
        {"class_balance": "sampler", "augment": False, "norm": "lrn", "layout": "original", "epochs": 8},
        {"model": "resnet18", "epochs": 2},
    ],
)
def test_variants_train(tmp_path: Path, variant: dict[str, Any]) -> None:
    """Each variant is the network that trained (its config says so) and it learned: its training loss
    fell and the train stage's own verdict is `learned` (loss clearly below chance, val AUC up)."""
    params = project(tmp_path, **variant)
    main(params)
    _, config = load_model(Path(params["paths"]["model"]))
    assert {key: config["train"][key] for key in variant} == variant
    summary = config["training_summary"]
    assert summary["lowest_train_loss"] < summary["first_train_loss"], summary
    assert summary["learned"] is True, summary


def test_linear_probe_trains_only_the_head_from_cached_features(tmp_path: Path) -> None:
    first = project(tmp_path, "first", mode="linear_probe", epochs=3)
    main(first)
    cache = list((Path(first["paths"]["checkpoints"]) / "features").glob("features-*.npy"))
    assert len(cache) == 1 and np.load(cache[0]).shape == (32, TINY["hidden_units"])
    trained = load_file(str(Path(first["paths"]["model"]) / "model.safetensors"))
    torch.manual_seed(3)  # the run's seed rebuilds its initial network
    initial = build_network(train_params(**TINY), num_classes=2, registry_root=tmp_path).model.state_dict()
    changed = {key for key, tensor in initial.items() if not torch.equal(tensor, trained[key])}
    assert changed == {"classifier.6.weight", "classifier.6.bias"}
    # A second run with other head settings reuses the same cached features (same data and backbone):
    # the same file, not one written anew (atomic writes replace the inode).
    inode = cache[0].stat().st_ino
    second = project(tmp_path, "first", mode="linear_probe", epochs=2, learning_rate=0.01)
    main(second)
    assert cache[0].stat().st_ino == inode


def test_feature_cache_keeps_the_most_recently_used_files(tmp_path: Path) -> None:
    images = torch.rand(5, 1, 2, 2)

    def features(key: str) -> np.ndarray:
        rows = Rows(images.numpy(), torch.device("cpu"), streamed=False)
        return cached_features(nn.Flatten(), rows, lambda x: x, tmp_path, key, batch_size=2, keep=2)

    features("a")
    os.utime(tmp_path / "features-a.npy", ns=(1_000, 1_000))  # long ago
    features("b")
    os.utime(tmp_path / "features-b.npy", ns=(2_000, 2_000))  # a little later
    np.testing.assert_array_equal(features("a"), images.flatten(1).numpy())  # used again: now the newest
    features("c")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["features-a.npy", "features-c.npy"]


def test_partial_mode_trains_the_last_blocks_and_the_classifier(tmp_path: Path) -> None:
    network = build_network(
        train_params(mode="partial", trainable_blocks=1), num_classes=2, registry_root=tmp_path
    )
    trainable = {
        name.split(".")[0] + "." + name.split(".")[1]
        for name, p in network.model.named_parameters()
        if p.requires_grad
    }
    # classifier.2 and .5: the batch norm of the hidden FC layers (norm batchnorm_fc)
    assert trainable == {
        "features.10", "features.11", "classifier.1", "classifier.2", "classifier.4", "classifier.5",
        "classifier.6",
    }  # fmt: skip


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(tmp_path: Path) -> None:
    epochs = 6
    straight = project(tmp_path, "straight", epochs=epochs)
    main(straight)

    killed = project(tmp_path, "killed", epochs=epochs)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(killed))
    last = Path(killed["paths"]["checkpoints"]) / "last.pt"
    command = [sys.executable, "-c", "from flows.cli import app; app()", "stage", "train"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not last.exists() and process.poll() is None:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    reached = torch.load(last, weights_only=True)["loop"]["epoch"]
    assert 1 <= reached < epochs, "the run was not killed mid-way"

    main(killed)  # resumes from last.pt
    expected = load_file(str(Path(straight["paths"]["model"]) / "model.safetensors"))
    resumed = load_file(str(Path(killed["paths"]["model"]) / "model.safetensors"))
    assert expected.keys() == resumed.keys()
    for key, tensor in expected.items():
        assert torch.equal(tensor, resumed[key]), key


def test_augmentation_keeps_values_above_1_and_a_one_pixel_peak() -> None:
    """With the warp at identity and no noise, augmentation changes nothing: no top clamp flattens what
    preprocess's soft top clip kept above 1, and a 1-px finding keeps its whole height."""
    from tasks.train.augment import BatchAugment

    still = train_params(flip=False, rotate_degrees=0.0, zoom=0.0, intensity_shift=0.0, noise_std=0.0)
    batch = torch.full((2, 1, SIZE, SIZE), 0.5)
    batch[:, 0, 30, 30] = 1.4  # brighter than the window's top
    out = BatchAugment(still, torch.device("cpu"))(batch)
    torch.testing.assert_close(out, batch, atol=1e-5, rtol=0)
    shifted = BatchAugment(train_params(noise_std=0.0, intensity_shift=0.05), torch.device("cpu"))
    shifted.reseed(0)
    assert float(shifted(batch).amax()) > 1.0
