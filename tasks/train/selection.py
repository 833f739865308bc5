"""Which epoch's weights the train stage keeps: the best by validation AUC, unless the validation split
is too small to tell epochs apart, then the last epoch's.

Why: the training loop keeps the epoch with the best validation AUC. On a val split with a handful of
abnormal images that AUC moves by +-0.1-0.2 from epoch to epoch by chance alone, and the maximum over 30
epochs picks whichever epoch happened to fit that handful: on round 1 of the learning suite (rare
finding, 3 positive val patients) a val AUC of 0.85 chose an epoch whose test AUC was 0.19, and nothing
said so. With the cosine schedule the rate has annealed to ~0 by the last epoch, so the last epoch's
weights are a settled choice that does not look at the val split (BENCHMARKS.md, learning suite: the
last epoch's test AUC beside the chosen epoch's on every task).
"""

from __future__ import annotations

from typing import Any

import torch
from rich.console import Console

from tasks.train import distributed as ddp
from tasks.train.data import TrainData

console = Console(stderr=True)


def thin_val_reason(data: TrainData, minimum: int) -> str | None:
    """Why the val split cannot choose an epoch (a class with fewer than `minimum` images), or None."""
    val_labels = data.labels[data.splits["val"]]
    counts = torch.bincount(val_labels, minlength=len(data.classes))  # (C,) images per class
    thin = [f"{int(n)} {name}" for name, n in zip(data.classes, counts, strict=True) if n < minimum]
    if not thin:
        return None
    return (
        f"the val split holds only {', '.join(thin)} images (fewer than train.min_val_images_per_class="
        f"{minimum}): its AUC cannot tell epochs apart, so the last epoch's weights are kept"
    )


def weight_choice(data: TrainData, minimum: int, dist: ddp.Dist = ddp.SINGLE) -> dict[str, Any]:
    """The `training_summary` fields that say which epoch's weights the stage keeps and why, decided
    before training (`LoopSettings.restore_best`); warns once, on rank 0, when it is the last epoch's."""
    reason = thin_val_reason(data, minimum)
    if reason is None:
        return {"selected": "best_val_auc", "selection_reason": "best validation AUC"}
    if dist.leader:
        console.print(f"[bold red]WARNING: {reason}[/bold red]")
    return {"selected": "last_epoch", "selection_reason": reason}
