"""Single-frame instances of one CT/MR/PET/NM series are slices of a volume, not separate images.

The slice strategy picks among them as it does among the frames of a multi-frame object: `middle`
keeps the central instance, `n` evenly spaced ones, `all` every one. A projection across separately
stored instances is not built: under `mip` a series contributes its middle instance.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tasks.ingest.records import FileState
from tasks.ingest.settings import SliceStrategy
from tasks.ingest.slices import select_slices

VOLUME_MODALITIES = ("CT", "MR", "PT", "NM")


def select_series_slices(
    files: dict[str, FileState], strategy: SliceStrategy, count: int
) -> dict[str, FileState]:
    """A copy of `files` where series instances the strategy leaves out are marked skipped."""
    if strategy == "all":
        return files
    series: dict[str, list[str]] = {}
    for relative, state in files.items():
        single = state.disposition == "ok" and len(state.images) == 1
        if single and state.series_id and state.meta.modality in VOLUME_MODALITIES:
            series.setdefault(state.series_id, []).append(relative)
    selected = dict(files)
    for members in series.values():
        if len(members) < 2:
            continue
        ordered = sorted(
            members, key=lambda rel: (_position(files[rel]) is None, _position(files[rel]) or 0.0, rel)
        )
        picks = select_slices(
            np.zeros((len(ordered), 1, 1)), "middle" if strategy == "mip" else strategy, count
        )
        keep = {index for index, _ in picks}
        reason = f"series slice not selected: slice_strategy={strategy} keeps "
        reason += f"{len(keep)} of {len(ordered)} instances"
        for index, relative in enumerate(ordered):
            if index not in keep:
                selected[relative] = replace(files[relative], disposition="skipped", reason=reason, images=[])
    return selected


def _position(state: FileState) -> float | None:
    return state.meta.slice_position
