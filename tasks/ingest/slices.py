"""Turning a stack of frames or slices into the 2D images training sees (`ingest.slice_strategy`)."""

from __future__ import annotations

import numpy as np

from tasks.ingest.settings import SliceStrategy


def select_slices(stack: np.ndarray, strategy: SliceStrategy, count: int) -> list[tuple[int, np.ndarray]]:
    """Pick 2D images from `stack` (N, H, W) or (N, H, W, 3); returns (frame index, image) pairs.

    `middle`: the central slice; `n`: `count` evenly spaced slices; `mip`: maximum-intensity projection
    (frame -1); `all`: every slice. A single-slice stack always yields that slice.
    """
    total = stack.shape[0]
    if total == 1:
        return [(0, stack[0])]
    if strategy == "middle":
        return [(total // 2, stack[total // 2])]
    if strategy == "n":
        picks = np.unique(np.linspace(0, total - 1, max(count, 1)).round().astype(int))
        return [(int(index), stack[index]) for index in picks]
    if strategy == "mip":
        return [(-1, stack.max(axis=0))]
    return [(index, stack[index]) for index in range(total)]
