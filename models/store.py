"""A model on disk: `model.safetensors` (state dict, no pickle) + `config.json` (how to rebuild it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

from models.zoo import build_model
from tasks.common.atomic import atomic_path, write_json
from tasks.common.errors import RadflowError

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def save_model(model: nn.Module, config: dict[str, Any], model_dir: Path) -> None:
    """Write the state dict and its config atomically (config last, so a complete config means a model)."""
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    with atomic_path(model_dir / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp))
    write_json(model_dir / CONFIG_FILE, config)


def read_config(model_dir: Path) -> dict[str, Any]:
    """config.json of a saved model; a RadflowError naming the folder when it is not a model."""
    path = model_dir / CONFIG_FILE
    if not path.is_file() or not (model_dir / WEIGHTS_FILE).is_file():
        raise RadflowError(f"no model in {model_dir} (expected {WEIGHTS_FILE} and {CONFIG_FILE})")
    config: dict[str, Any] = json.loads(path.read_text())
    return config


def load_model(model_dir: Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network from config.json, load its safetensors weights (strictly), eval mode."""
    config = read_config(model_dir)
    model = build_model(config["architecture"])
    model.load_state_dict(load_file(str(model_dir / WEIGHTS_FILE)), strict=True)
    return model.eval(), config
