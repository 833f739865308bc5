"""Resumable checkpoints in `paths.checkpoints`: `last.pt` after every epoch, `best.pt` at the best one.

Only tensors, numbers, strings and containers are stored, so `torch.load(weights_only=True)` reads them.
A checkpoint belongs to one run identity (resolved params, seed and data fingerprint); another
identity starts fresh instead of resuming someone else's run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tasks.common.atomic import atomic_path

LAST, BEST = "last.pt", "best.pt"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint at `path` if it exists and belongs to this run identity, else None."""
    if not path.is_file():
        return None
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return state if state.get("identity") == identity else None
