"""Did training learn anything? The `training_summary` block of config.json, and the warning line.

A network that learned nothing still yields a model file, a report and a promotion decision full of
numbers. Two signs give it away from the training curves alone: the training loss never fell below
chance level (the loss of the best constant prediction, ln K for balanced or inverse-frequency
weighted classes), and the validation AUC never rose clearly above 0.5. The evaluate side shows this
block in the report, the model card and the Prefect run (docs/CONTRACTS.md).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from rich.console import Console

from tasks.train.data import TrainData
from tasks.train.params import TrainParams

console = Console(stderr=True)


def chance_loss(labels: torch.Tensor, num_classes: int, balanced: bool) -> float:
    """Cross-entropy of the best constant prediction on these training labels.

    The best constant is the class distribution the loss sees: uniform over the present classes when
    classes are balanced (inverse-frequency weights or a balanced sampler), so ln K; otherwise the
    label frequencies, whose entropy it is.
    """
    counts = torch.bincount(labels, minlength=num_classes).double()
    prior = (counts > 0).double() if balanced else counts
    prior = prior / prior.sum()
    present = prior > 0
    return float(-(prior[present] * prior[present].log()).sum())


def training_summary(
    loop: dict[str, Any],
    chance: float,
    num_classes: int,
    min_loss_drop: float,
    min_val_auc: float,
) -> dict[str, Any]:
    """The `training_summary` block: loss and AUC landmarks and `learned` with its reason.

    Learned means both: the lowest training loss fell at least `min_loss_drop` (a fraction) below
    `chance`, and the best validation AUC reached `min_val_auc`.
    """
    history = loop["history"]
    losses = [epoch["train_loss"] for epoch in history]
    aucs = [epoch["val_auc"] for epoch in history if not math.isnan(epoch["val_auc"])]
    best_auc = max(aucs) if aucs else float("nan")
    problems = []
    if not losses or min(losses) > chance * (1 - min_loss_drop):
        problems.append(
            f"training loss never fell {min_loss_drop:.0%} below chance level {chance:.3f} "
            f"(first epoch {losses[0] if losses else float('nan'):.3f}, "
            f"lowest {min(losses) if losses else float('nan'):.3f})"
        )
    if not best_auc >= min_val_auc:  # NaN (a single-class val split) counts as not shown
        problems.append(f"best validation AUC {best_auc:.3f} stayed below {min_val_auc}")
    return {
        "learned": not problems,
        "reason": "; ".join(problems) if problems else "training loss fell below chance and val AUC rose",
        "first_train_loss": losses[0] if losses else None,
        "final_train_loss": losses[-1] if losses else None,
        "lowest_train_loss": min(losses) if losses else None,
        "chance_loss": chance,
        "ln_k": math.log(num_classes),
        "best_val_auc": best_auc if aucs else None,
        "best_epoch": loop["best_epoch"],
        "epochs_run": len(history),
    }


def summarise(loop: dict[str, Any], data: TrainData, params: TrainParams) -> dict[str, Any]:
    """The run's `training_summary`; prints a loud warning line when it did not learn."""
    train_labels = data.labels[data.splits["train"]]
    balanced = params.class_balance != "none"
    chance = chance_loss(train_labels, len(data.classes), balanced)
    summary = training_summary(
        loop, chance, len(data.classes), params.learned_min_loss_drop, params.learned_min_val_auc
    )
    if not summary["learned"]:
        console.print(f"[bold red]WARNING: training did not learn: {summary['reason']}[/bold red]")
    return summary
