"""Export a registry version as a MONAI bundle, the format MONAI Deploy and the MONAI model zoo read.

    configs/metadata.json   version, input/output spec (network_data_format), headline metrics, intended use
    configs/inference.json  preprocessing (the same MONAI transforms as radflow's preprocess), network,
                            softmax; `run` writes per-class probabilities of `image` to `output_file`
    models/model.pt         the state dict as plain tensors: torch.load(weights_only=True) reads it
    docs/README.md          how to run it, then the model card

The network is rebuilt by `models.build_model`, so the bundle runs where radflow is installed. The
metadata names MONAI's schema but nothing downloads it.

MONAI evaluates config strings: `$...` as Python, `@id` as a reference, `%file#id` as a macro. Class
names are the only text from the data that reaches the configs; ingest admits only safe ones
(tasks.common.classes), and a name that is not (a model registered before that rule) is written
JSON-quoted (`"\"$x\""`), so no config string built from data starts with `$`, `@` or `%`.
"""

from __future__ import annotations

import json
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from models.store import WEIGHTS_FILE
from tasks.common.classes import is_safe_class_name
from tasks.common.errors import RadflowError

SCHEMA = (
    "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20220324.json"
)
EVAL_METRICS = (
    "roc_auc",
    "pr_auc",
    "accuracy",
    "balanced_accuracy",
    "sensitivity",
    "specificity",
    "threshold",
)


def card_section(card: str, title: str) -> str:
    """The text of one `## title` section of a markdown model card ("" when absent)."""
    lines, inside = [], False
    for line in card.splitlines():
        if line.startswith("## "):
            inside = line[3:].strip().lower() == title.lower()
        elif inside:
            lines.append(line)
    return "\n".join(lines).strip()


def inert(name: str) -> str:
    """A class name as it may appear in a bundle config: itself when safe, else quoted (see above)."""
    return name if is_safe_class_name(name) else json.dumps(name)


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def metadata_json(
    name: str, version: int, config: dict[str, Any], metrics: dict[str, Any], card: str, weights_sha256: str
) -> dict[str, Any]:
    """configs/metadata.json: MONAI's bundle metadata for a classifier of (C, S, S) normalised images."""
    spec, size, classes = config["input"], int(config["image_size"]), [inert(c) for c in config["classes"]]
    low = min((0 - m) / s for m, s in zip(spec["mean"], spec["std"], strict=True))
    high = max((1 - m) / s for m, s in zip(spec["mean"], spec["std"], strict=True))
    modalities = sorted((metrics.get("subgroups") or {}).get("modality") or {}) or ["unknown"]
    semver = f"{version}.0.0"
    return {
        "schema": SCHEMA,
        "version": semver,
        "changelog": {semver: f"radflow registry v{version} (weights sha256 {weights_sha256})"},
        "monai_version": _version("monai"),
        "pytorch_version": _version("torch"),
        "numpy_version": _version("numpy"),
        "required_packages_version": {"radflow": _version("radflow"), "pillow": _version("pillow")},
        "name": name,
        "task": f"2D image classification: {', '.join(classes)}",
        "description": f"radflow registry version {version}, exported with its model card (docs/README.md)",
        "authors": "radflow",
        "copyright": "see the training data's licence",
        "intended_use": card_section(card, "Intended use") or "see docs/README.md",
        "data_type": "png",
        "image_classes": "single-channel 2D image (radiograph), any size",
        "pred_classes": classes,
        "eval_metrics": {metric: metrics.get(metric) for metric in EVAL_METRICS},
        "eval_metrics_ci95": {metric: (metrics.get("ci") or {}).get(metric) for metric in EVAL_METRICS},
        "network_data_format": {
            "inputs": {
                "image": {
                    "type": "image",
                    "format": "magnitude",
                    "modality": "/".join(modalities),
                    "num_channels": int(spec["channels"]),
                    "spatial_shape": [size, size],
                    "dtype": "float32",
                    "value_range": [round(low, 4), round(high, 4)],
                    "is_patch_data": False,
                    "channel_def": {str(i): "grayscale, normalised" for i in range(int(spec["channels"]))},
                }
            },
            "outputs": {
                "pred": {
                    "type": "probabilities",
                    "format": "classes",
                    "num_channels": len(classes),
                    "spatial_shape": [1],
                    "dtype": "float32",
                    "value_range": [0, 1],
                    "is_patch_data": False,
                    "channel_def": {str(i): label for i, label in enumerate(classes)},
                }
            },
        },
        "radflow": {"registry_version": version, "weights_sha256": weights_sha256},
    }


def inference_json(
    config: dict[str, Any], lower_percentile: float, upper_percentile: float
) -> dict[str, Any]:
    """configs/inference.json: radflow's preprocess + to_model_input as MONAI transforms, then softmax."""
    spec, size = config["input"], int(config["image_size"])
    return {
        "imports": ["$import json", "$import pathlib", "$import torch", "$import models"],
        "bundle_root": ".",
        "image": "",
        "output_file": "$@bundle_root + '/probabilities.json'",
        "device": "$torch.device('cpu')",
        "classes": [inert(name) for name in config["classes"]],
        "checkpoint_file": "$@bundle_root + '/models/model.pt'",
        "network_def": {"_target_": "models.build_model", "architecture": config["architecture"]},
        "network": "$@network_def.to(@device).eval()",
        "preprocessing": {
            "_target_": "Compose",
            "transforms": [
                # PIL reads a grayscale PNG/JPEG as (H, W); no transpose, as radflow's ingest reads it.
                {
                    "_target_": "LoadImage",
                    "reader": "PILReader",
                    "reverse_indexing": False,
                    "image_only": True,
                },
                {"_target_": "EnsureChannelFirst", "channel_dim": "no_channel"},  # (1, H, W)
                {
                    "_target_": "ScaleIntensityRangePercentiles",
                    "lower": lower_percentile,
                    "upper": upper_percentile,
                    "b_min": 0.0,
                    "b_max": 1.0,
                    "clip": True,
                },
                {"_target_": "Resize", "spatial_size": size, "size_mode": "longest", "mode": "area"},
                {"_target_": "SpatialPad", "spatial_size": [size, size]},  # (1, S, S) in [0, 1]
                {"_target_": "CastToType", "dtype": "$torch.float16"},  # the training store's precision
                {"_target_": "CastToType", "dtype": "$torch.float32"},
                {"_target_": "RepeatChannel", "repeats": int(spec["channels"])},  # (C, S, S)
                {
                    "_target_": "NormalizeIntensity",
                    "subtrahend": list(spec["mean"]),
                    "divisor": list(spec["std"]),
                    "channel_wise": True,
                },
            ],
        },
        "postprocessing": {"_target_": "Activations", "softmax": True},  # (K,) logits -> probabilities
        "probabilities": "$@postprocessing(@network(@preprocessing(@image)[None].to(@device))[0].detach())",
        "initialize": [
            "$@network.load_state_dict(torch.load(@checkpoint_file, map_location=@device, weights_only=True))"
        ],
        "run": [
            "$pathlib.Path(@output_file).write_text(json.dumps(dict(zip(@classes, @probabilities.tolist()))))"
        ],
    }


def readme(name: str, version: int, card: str) -> str:
    """docs/README.md: how to run the bundle, then the model card."""
    return (
        f"# {name} {version}.0.0 (MONAI bundle)\n\n"
        "Exported from the radflow model registry. Runs where radflow is installed (the network is\n"
        "`models.build_model`). Classify one grayscale PNG/JPEG:\n\n"
        "```bash\n"
        "python -m monai.bundle run --config_file configs/inference.json \\\n"
        "    --meta_file configs/metadata.json --bundle_root . \\\n"
        "    --image path/to/image.png --output_file probabilities.json\n"
        "```\n\n"
        "`models/model.pt` is a plain state dict: `torch.load(path, weights_only=True)`.\n\n"
        f"{card}"
    )


def export_bundle(
    model_dir: Path,
    out: Path,
    *,
    name: str,
    version: int,
    config: dict[str, Any],
    metrics: dict[str, Any],
    model_card: str,
    weights_sha256: str,
    lower_percentile: float,
    upper_percentile: float,
) -> Path:
    """Write the bundle for the model in `model_dir` (a verified registry version) to `out`, atomically."""
    if out.exists() and any(out.iterdir()):
        raise RadflowError(f"{out} exists and is not empty; choose a new folder for the bundle")
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    for folder in ("configs", "models", "docs"):
        (staging / folder).mkdir(parents=True)
    documents = {
        "configs/metadata.json": metadata_json(name, version, config, metrics, model_card, weights_sha256),
        "configs/inference.json": inference_json(config, lower_percentile, upper_percentile),
    }
    for relative, document in documents.items():
        (staging / relative).write_text(json.dumps(document, indent=2) + "\n")
    torch.save(dict(load_file(str(model_dir / WEIGHTS_FILE))), staging / "models" / "model.pt")
    (staging / "docs" / "README.md").write_text(readme(name, version, model_card))
    if out.exists():
        out.rmdir()
    staging.rename(out)
    return out
