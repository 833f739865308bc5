"""Initial weights for training: ImageNet (torchvision checkpoint, verified by SHA-256) or a registry model.

Only tensors whose name and shape match are copied; the rest (a new head, batch-norm layers the
checkpoint lacks) keep their fresh initialisation, and the report says which is which.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from models.store import WEIGHTS_FILE
from tasks.common.errors import RadflowError
from tasks.common.hashing import file_sha256

IMAGENET_FILE = "alexnet-owt-7be5be79.pth"


@dataclass(frozen=True)
class LoadReport:
    """Which of the model's state-dict keys came from the checkpoint and which are freshly initialised."""

    loaded: list[str]
    fresh: list[str]
    reshaped: list[str]  # fresh because the checkpoint's tensor has another shape: "key: ckpt -> model"

    def describe(self, source: str) -> str:
        """One log line: how many tensors came from `source`, and which stayed fresh and why."""
        line = f"weights {source}: {len(self.loaded)} tensors loaded, fresh: {self.fresh}"
        if self.reshaped:
            line += (
                f"; of those, shaped otherwise in the checkpoint (a pooling head or another width or "
                f"class count: started fresh, the conv features still warm): {self.reshaped}"
            )
        return line


def default_imagenet_path() -> Path:
    """Where torchvision would cache the checkpoint: $TORCH_HOME/hub/checkpoints (usually ~/.cache/torch)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILE


def load_matching(model: nn.Module, state: dict[str, torch.Tensor]) -> LoadReport:
    """Copy every tensor whose key and shape match the model's; report loaded, fresh and reshaped keys."""
    own = model.state_dict()
    matching = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    reshaped = [
        f"{k}: {tuple(v.shape)} -> {tuple(own[k].shape)}"
        for k, v in sorted(state.items())
        if k in own and own[k].shape != v.shape
    ]
    model.load_state_dict(matching, strict=False)
    return LoadReport(loaded=sorted(matching), fresh=sorted(set(own) - set(matching)), reshaped=reshaped)


def load_imagenet(model: nn.Module, path: Path | None, expected_sha256: str) -> LoadReport:
    """Load the torchvision AlexNet ImageNet checkpoint into `model` after checking its hash.

    `expected_sha256` is the file's full hex digest (train.imagenet_sha256 checks its form).
    """
    path = path or default_imagenet_path()
    if not path.is_file():
        raise RadflowError(
            f"ImageNet weights not found at {path}; download {IMAGENET_FILE} (torchvision AlexNet) there, "
            "set train.imagenet_path, or use train.weights=none"
        )
    digest = file_sha256(path)
    if digest != expected_sha256.lower():
        raise RadflowError(
            f"{path} has SHA-256 {digest[:16]}..., expected {expected_sha256}: not the torchvision "
            "AlexNet checkpoint (or a corrupted download); refusing to load it"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    report = load_matching(model, state)
    if not report.loaded:
        raise RadflowError(f"{path}: no tensor matches the model's layer names; is it an AlexNet checkpoint?")
    return report


def load_registry_weights(model: nn.Module, model_dir: Path) -> LoadReport:
    """Warm start from a registered model's safetensors (a head with other classes stays fresh)."""
    return load_matching(model, load_file(str(model_dir / WEIGHTS_FILE)))
