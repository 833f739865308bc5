"""Tiny real inputs for the evaluate / registry / promote / predict tests: a preprocessed store with a
learnable signal, and small AlexNets saved exactly as the train stage saves them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

import models
from models.registry import Registry
from tasks.common.data_profile import describe
from tasks.common.params import parse_section
from tasks.demo_data.synth import chest_image
from tasks.preprocess.stage import PreprocessParams
from tasks.preprocess.transform import image_to_tensor
from tests.defaults import network_config, params_under

CLASSES = ["effusion", "normal", "opacity"]
SIZE = 64  # the smallest side torchvision-layout AlexNet accepts


def tiny_image(label: str, rng: np.random.Generator) -> np.ndarray:
    """(S, S) in [0, 1]: noise, plus a bright blob (opacity) or a bright lower band (effusion)."""
    image = 0.3 + 0.05 * rng.standard_normal((SIZE, SIZE))
    if label == "opacity":
        image[16:36, 10:30] += 0.5
    elif label == "effusion":
        image[48:, :] += 0.5
    return np.clip(image, 0, 1)


def make_store(folder: Path, patients: int = 24, per_patient: int = 2, seed: int = 0) -> None:
    """preprocess's contract: images.npy (N, 1, S, S) float16, index.csv, classes.json.

    Patient i has class i % 3; successive groups of three patients go to train (x4), val (x2), test (x2).
    """
    rng = np.random.default_rng(seed)
    splits = ["train"] * 4 + ["val"] * 2 + ["test"] * 2
    rows: list[dict[str, Any]] = []
    images: list[np.ndarray] = []
    for patient in range(patients):
        label = CLASSES[patient % 3]
        for image in range(per_patient):
            images.append(tiny_image(label, rng)[None])
            rows.append(
                {
                    "row": len(rows),
                    "image_id": f"{patient:08x}{image:08x}",
                    "patient_id": f"P-{patient:012x}",
                    "study_id": f"S-{patient:012x}",
                    "label": label,
                    "label_index": CLASSES.index(label),
                    "split": splits[(patient // 3) % len(splits)],
                    "pixel_hash": "",
                    "modality": "DX",
                    "view": "PA",
                    "manufacturer": "",
                    "sex": "F" if patient % 2 else "M",
                    "age_band": "40-49",
                }
            )
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "images.npy", np.stack(images).astype(np.float16))
    pd.DataFrame(rows).to_csv(folder / "index.csv", index=False)
    (folder / "classes.json").write_text(json.dumps({"classes": CLASSES, "image_size": SIZE}))


def profiled_config(params: dict[str, Any], rng: np.random.Generator, images: int = 24) -> dict[str, Any]:
    """tiny_config() with the data profile of `images` chest DX radiographs drawn from `rng` and
    preprocessed as params.yaml says, as train writes it (what predict's out-of-distribution screen and
    the monitor read)."""
    transform = parse_section(params, "preprocess", PreprocessParams).transform_settings(SIZE)
    stack = np.stack([image_to_tensor(chest_image(SIZE, "normal", rng), transform) for _ in range(images)])
    header = {
        "modality": ["DX"] * images,
        "body_part": ["CHEST"] * images,
        "photometric": ["MONOCHROME2"] * images,
    }
    return {**tiny_config(), "data_profile": describe(header, stack)}


def tiny_config(seed: int = 0) -> dict[str, Any]:
    """config.json for a small single-channel AlexNet, per the train contract."""
    architecture = network_config(norm="none", dropout=0.0, hidden_units=16, in_channels=1, num_classes=3)
    return {
        "architecture": architecture.to_dict(),
        "classes": CLASSES,
        "image_size": SIZE,
        "input": models.input_spec(1),
        "train": {"epochs": 1, "note": "tiny test model"},
        "seed": seed,
    }


def train_tiny(store: Path, steps: int, seed: int) -> torch.nn.Module:
    """A few Adam steps on the train split (steps=0: the random initialisation)."""
    torch.manual_seed(seed)
    config = tiny_config(seed)
    model = models.build_model(config["architecture"])
    index = pd.read_csv(store / "index.csv")
    train = index[index["split"] == "train"]
    images = torch.from_numpy(np.load(store / "images.npy")[train["row"].to_numpy()].astype(np.float32))
    labels = torch.tensor(train["label_index"].to_numpy())
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(steps):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(models.to_model_input(images, config)), labels)
        loss.backward()
        optimiser.step()
    return model.eval()


def constant_model(seed: int = 0) -> torch.nn.Module:
    """A deliberately useless model: the last layer outputs zeros, so every class gets p = 1/3."""
    model = models.build_model(tiny_config(seed)["architecture"])
    with torch.no_grad():
        for parameter in list(model.parameters())[-2:]:
            parameter.zero_()
    return model.eval()


def save_candidate(model: torch.nn.Module, model_dir: Path, seed: int = 0) -> None:
    """Write the model as the train stage does (model.safetensors + config.json)."""
    models.save_model(model, tiny_config(seed), model_dir)


def register_tiny_champion(
    params: dict[str, Any],
    model_dir: Path,
    model: torch.nn.Module | None = None,
    config: dict[str, Any] | None = None,
    **records: Any,
) -> int:
    """Save `model` (default: the constant one) with `config` (default: tiny_config()) into `model_dir`
    as train does, and register it in params' registry as the champion, as promote does. `records`:
    register_champion's metrics, model_card, lineage, decision (default empty)."""
    models.save_model(constant_model() if model is None else model, config or tiny_config(), model_dir)
    empty: dict[str, Any] = {"metrics": {}, "model_card": "", "lineage": {}, "decision": {}}
    registry = Registry(Path(params["paths"]["registry"]))
    return registry.register_champion(model_dir, **(empty | records))


def project_params(root: Path, **overrides: Any) -> dict[str, Any]:
    """The repository's params.yaml with every path moved under `root` and quick settings."""
    params = params_under(root)
    params["evaluate"].update(bootstrap_samples=60, gradcam_per_kind=1)
    params["promote"].update(bootstrap_samples=60, min_roc_auc=0.0, min_sensitivity=0.0, min_specificity=0.0)
    for key, value in overrides.items():
        section, name = key.split("__")
        params[section][name] = value
    return params
