"""`train.learning_rate: auto`: a learning-rate range test on the train split (Smith 2017, fastai's finder).

The learning rate that trains a network depends on the data: 1e-3 fits the demo, while on faint findings
the same AlexNet blows up in its first steps and never recovers. The test trains for `lr_finder_steps`
steps while the learning rate grows exponentially from `MIN_LR` to `MAX_LR`, records the (smoothed)
loss, and picks a tenth of the rate at the loss minimum: the fastest rate still well inside the stable
range. The network and optimiser are put back as they were afterwards. The curve is written as a DVC
plot (`paths.train_live/lr_finder.csv`, columns log10_learning_rate, learning_rate, loss,
smoothed_loss).
"""

from __future__ import annotations

import copy
import csv
import io
import math
from pathlib import Path

import torch

from tasks.common.atomic import write_text
from tasks.train.loop import Job

MIN_LR, MAX_LR = 1e-7, 1.0
SMOOTHING = 0.9  # exponential moving average of the loss (bias-corrected), as fastai does
DIVERGED = 4.0  # stop once the smoothed loss exceeds this multiple of its minimum
PICK_DIVISOR = 10.0  # chosen rate = rate at the smoothed-loss minimum / this
NO_DESCENT, STABLE_RISE = 0.02, 0.1  # no descent: minimum < 2 % below the start; stable: < 10 % above it
CURVE_FILE = "lr_finder.csv"
CURVE_COLUMNS = ("log10_learning_rate", "learning_rate", "loss", "smoothed_loss")


def range_test(job: Job, batch_size: int, steps: int, seed: int) -> list[tuple[float, float, float]]:
    """(learning rate, loss, smoothed loss) per step; the job's model and optimiser are left unchanged.

    The optimiser's parameter groups keep their ratios (pretrained layers at pretrained_lr_factor).
    """
    model_state = copy.deepcopy(job.model.state_dict())
    optimizer_state = copy.deepcopy(job.optimizer.state_dict())
    peak = max(group["lr"] for group in job.optimizer.param_groups)
    ratios = [group["lr"] / peak for group in job.optimizer.param_groups]
    growth = (MAX_LR / MIN_LR) ** (1 / max(steps - 1, 1))
    generator = torch.Generator().manual_seed(seed)
    job.reseed(seed)
    job.set_train_mode()
    curve: list[tuple[float, float, float]] = []
    average, best = 0.0, math.inf
    order = torch.empty(0, dtype=torch.long)
    for step in range(steps):
        if len(order) < batch_size:
            order = torch.randperm(len(job.train_rows), generator=generator)
        rows, order = job.train_rows[order[:batch_size]], order[batch_size:]
        rate = MIN_LR * growth**step
        for group, ratio in zip(job.optimizer.param_groups, ratios, strict=True):
            group["lr"] = rate * ratio
        with job.autocast:
            loss = job.loss(job.net(job.prepare_train(job.inputs[rows])), job.labels[rows])
        job.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        job.optimizer.step()
        value = loss.item()
        average = SMOOTHING * average + (1 - SMOOTHING) * value
        smoothed = average / (1 - SMOOTHING ** (step + 1))
        curve.append((rate, value, smoothed))
        best = min(best, smoothed)
        if not math.isfinite(smoothed) or smoothed > DIVERGED * best:
            break
    job.model.load_state_dict(model_state)
    job.optimizer.load_state_dict(optimizer_state)
    return curve


def pick_learning_rate(curve: list[tuple[float, float, float]]) -> float:
    """A tenth of the rate where the smoothed loss was lowest (within [MIN_LR, MAX_LR]).

    When the loss never fell (its minimum is within `NO_DESCENT` of the start, as on faint findings
    with an unstable network), the minimum sits at a meaninglessly small rate; then the largest rate
    whose loss stayed within `STABLE_RISE` of the start stands in for it.
    """
    start = curve[0][2]
    rate_at_min, _, lowest = min(curve, key=lambda point: point[2])
    if lowest > start * (1 - NO_DESCENT):
        rate_at_min = max(rate for rate, _, smoothed in curve if smoothed <= start * (1 + STABLE_RISE))
    return min(max(rate_at_min / PICK_DIVISOR, MIN_LR), MAX_LR)


def write_curve(curve: list[tuple[float, float, float]], live_dir: Path) -> None:
    """The range test's curve as a CSV DVC can plot (header only when no test ran)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CURVE_COLUMNS)
    writer.writerows(
        (f"{math.log10(rate):.3f}", f"{rate:.4g}", f"{loss:.5f}", f"{smoothed:.5f}")
        for rate, loss, smoothed in curve
    )
    write_text(live_dir / CURVE_FILE, buffer.getvalue())
