"""The training loop: epochs over in-memory tensors, validation AUC, early stopping, resumable checkpoints."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from dvclive import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sklearn.metrics import roc_auc_score
from torch import nn

from tasks.train.checkpoint import BEST, LAST, load_checkpoint, save_checkpoint
from tasks.train.data import epoch_order

Prepare = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Job:
    """What the loop trains: `net` maps prepared `inputs` rows to logits; `model` is what gets saved."""

    net: nn.Module  # the whole model, or only its head in linear-probe mode
    model: nn.Module
    inputs: torch.Tensor  # (N, 1, S, S) float16 images, or (N, F) cached features
    labels: torch.Tensor  # (N,) int64
    train_rows: torch.Tensor
    val_rows: torch.Tensor
    prepare_train: Prepare  # raw rows -> network input, with augmentation
    prepare_eval: Prepare
    loss: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    set_train_mode: Callable[[], None]
    reseed: Callable[[int], None]  # seeds augmentation for one epoch
    autocast: torch.autocast


@dataclass(frozen=True)
class LoopSettings:
    epochs: int
    batch_size: int
    patience: int  # epochs without a better val AUC before stopping; 0 = never stop early
    balanced_sampling: bool
    seed: int
    checkpoints: Path
    live_dir: Path
    identity: dict[str, Any]  # what a checkpoint must match to be resumed


def macro_auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """One-vs-rest macro ROC-AUC over the classes that have both positives and negatives here."""
    onehot = np.eye(probabilities.shape[1])[labels]  # (n, C)
    present = [c for c in range(onehot.shape[1]) if 0 < onehot[:, c].sum() < len(labels)]
    if not present:
        return float("nan")
    return float(roc_auc_score(onehot[:, present], probabilities[:, present], average="macro"))


@torch.no_grad()
def predict(job: Job, rows: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(n, C) float32 class probabilities for `rows`, network in eval mode."""
    job.net.eval()
    out = []
    for start in range(0, len(rows), batch_size):
        with job.autocast:
            logits = job.net(job.prepare_eval(job.inputs[rows[start : start + batch_size]]))
        out.append(torch.softmax(logits.float(), dim=1).cpu())
    return torch.cat(out)


def train_one_epoch(job: Job, order: torch.Tensor, batch_size: int, advance: Callable[[int], None]) -> float:
    """One pass in `order` (positions into train_rows); returns the mean training loss."""
    job.set_train_mode()
    total, seen = 0.0, 0
    for start in range(0, len(order), batch_size):
        rows = job.train_rows[order[start : start + batch_size]]
        if len(rows) < 2:  # batch norm cannot train on a single image
            continue
        labels = job.labels[rows]
        with job.autocast:
            loss = job.loss(job.net(job.prepare_train(job.inputs[rows])), labels)
        job.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        job.optimizer.step()
        total += loss.item() * len(rows)
        seen += len(rows)
        advance(len(rows))
    return total / max(seen, 1)


def log_epoch(live: Live, metrics: dict[str, float]) -> None:
    for name, value in metrics.items():
        live.log_metric(name, value)
    live.next_step()


def resume_state(job: Job, settings: LoopSettings) -> dict[str, Any]:
    """Restore the last checkpoint of this run identity into the job, or a fresh loop state."""
    state = load_checkpoint(settings.checkpoints / LAST, settings.identity)
    if state is None:
        return {"epoch": 0, "best_auc": -1.0, "best_epoch": -1, "stale": 0, "stopped": False, "history": []}
    job.model.load_state_dict(state["model"])
    job.optimizer.load_state_dict(state["optimizer"])
    job.scheduler.load_state_dict(state["scheduler"])
    return dict(state["loop"])


def fit(job: Job, settings: LoopSettings) -> dict[str, Any]:
    """Train until `epochs` or early stop, resuming from `last.pt`; leaves the best weights in the model."""
    loop = resume_state(job, settings)
    generator = torch.Generator()
    val_labels = job.labels[job.val_rows].cpu().numpy()
    columns = (
        TextColumn("epoch {task.fields[epoch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    rate = TextColumn("{task.fields[rate]:.0f} img/s  val AUC {task.fields[auc]:.3f}")
    with (
        Live(str(settings.live_dir), dvcyaml=None, save_dvc_exp=False) as live,
        Progress(*columns, rate) as progress,
    ):
        for past in loop["history"]:  # a resumed run rewrites the curves DVC cleared before the stage
            log_epoch(live, past)
        task = progress.add_task("train", total=len(job.train_rows), epoch=0, rate=0.0, auc=float("nan"))
        for epoch in range(loop["epoch"], settings.epochs):
            if loop["stopped"]:
                break
            # Every random draw of an epoch derives from (seed, epoch): a resumed run repeats it exactly.
            epoch_seed = settings.seed * 10_007 + epoch
            torch.manual_seed(epoch_seed)
            generator.manual_seed(epoch_seed)
            job.reseed(epoch_seed)
            train_labels = job.labels[job.train_rows]
            order = epoch_order(train_labels, settings.balanced_sampling, generator)
            progress.reset(task, total=len(order), epoch=epoch + 1, rate=0.0, auc=loop["best_auc"])
            started = time.perf_counter()
            loss = train_one_epoch(job, order, settings.batch_size, lambda n: progress.advance(task, n))
            images_per_s = len(order) / (time.perf_counter() - started)
            auc = macro_auc(val_labels, predict(job, job.val_rows, settings.batch_size * 2).numpy())
            lr = job.optimizer.param_groups[0]["lr"]
            job.scheduler.step()
            progress.update(task, rate=images_per_s, auc=auc)
            loop["epoch"] = epoch + 1
            if loop["best_epoch"] < 0 or auc > loop["best_auc"]:  # the first epoch is the first best
                loop.update(best_auc=auc, best_epoch=epoch + 1, stale=0)
                save_checkpoint(
                    settings.checkpoints / BEST, {"model": job.model.state_dict(), "loop": dict(loop)}
                )
            else:
                loop["stale"] += 1
                loop["stopped"] = 0 < settings.patience <= loop["stale"]
            loop["history"].append({"train_loss": loss, "val_auc": auc, "learning_rate": lr})
            log_epoch(live, loop["history"][-1])
            save_checkpoint(
                settings.checkpoints / LAST,
                {
                    "identity": settings.identity,
                    "model": job.model.state_dict(),
                    "optimizer": job.optimizer.state_dict(),
                    "scheduler": job.scheduler.state_dict(),
                    "loop": dict(loop),
                },
            )
    best = torch.load(settings.checkpoints / BEST, map_location="cpu", weights_only=True)
    job.model.load_state_dict(best["model"])
    return loop
