"""Single-frame instances of one CT/MR/PET/NM series are slices of a volume, not separate images.

The slice strategy picks among them as it does among the frames of a multi-frame object: `middle`
keeps the central instance, `n` evenly spaced ones, `all` every one. A projection across separately
stored instances is not built: under `mip` a series contributes its middle instance.

Series are read from the run's new state grouped by SQL, one series in memory at a time; the
instances left out go to the scratch table `unselected` (path -> reason), which assembly applies.
The state itself keeps them as decoded, so another strategy needs no re-decode.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Iterator

import numpy as np

from tasks.ingest.settings import SliceStrategy
from tasks.ingest.slices import select_slices

VOLUME_MODALITIES = ("CT", "MR", "PT", "NM")


def select_series_slices(db: sqlite3.Connection, strategy: SliceStrategy, count: int) -> None:
    """Fill table `unselected` with the series instances the strategy leaves out."""
    db.execute("CREATE TABLE unselected (relative TEXT PRIMARY KEY, reason TEXT) WITHOUT ROWID")
    if strategy == "all":
        return
    for members in _series(db):
        if len(members) < 2:
            continue
        ordered = [
            relative for _, relative in sorted(members, key=lambda m: (m[0] is None, m[0] or 0.0, m[1]))
        ]
        picks = select_slices(
            np.zeros((len(ordered), 1, 1)), "middle" if strategy == "mip" else strategy, count
        )
        keep = {index for index, _ in picks}
        reason = f"series slice not selected: slice_strategy={strategy} keeps "
        reason += f"{len(keep)} of {len(ordered)} instances"
        db.executemany(
            "INSERT INTO unselected VALUES (?, ?)",
            [(relative, reason) for index, relative in enumerate(ordered) if index not in keep],
        )
    db.commit()


def _series(db: sqlite3.Connection) -> Iterator[list[tuple[float | None, str]]]:
    """The (slice position, path) of each volume series' single-image instances, a series at a time."""
    rows = db.execute(
        "SELECT series_id, relative, body FROM new.files WHERE disposition = 'ok' AND nimages = 1"
        f" AND series_id != '' AND modality IN {VOLUME_MODALITIES} ORDER BY series_id, relative"
    )
    for _, group in itertools.groupby(rows, key=lambda row: row[0]):
        yield [(json.loads(body)["meta"]["slice_position"], relative) for _, relative, body in group]
