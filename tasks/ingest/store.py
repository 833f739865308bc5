"""Writing the stage's outputs: manifest + images under `paths.ingested`, linkage + quarantine under
`paths.private`. Every file is written atomically; images no longer in the manifest are removed."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from tasks.atomic import atomic_open
from tasks.ingest.assemble import LINKAGE_COLUMNS, MANIFEST_COLUMNS, QUARANTINE_COLUMNS, Tables

IMAGES_DIR = "images"


def write_tables(tables: Tables, ingested: Path, private: Path) -> None:
    """manifest.csv (sorted by image_id), linkage.csv and quarantine.csv."""
    _write_csv(ingested / "manifest.csv", MANIFEST_COLUMNS, tables.manifest)
    _write_csv(private / "linkage.csv", LINKAGE_COLUMNS, tables.linkage)
    _write_csv(private / "quarantine.csv", QUARANTINE_COLUMNS, tables.quarantine)


def prune_images(images_dir: Path, keep: set[str]) -> int:
    """Delete stored images whose id is not in `keep` (sources deleted or changed); returns the count.

    Also clears temporary files a worker killed mid-write (time limit, crash) left behind.
    """
    for leftover in images_dir.glob(".*.tmp"):
        leftover.unlink(missing_ok=True)
    removed = 0
    for path in images_dir.glob("*.npy"):
        if path.stem not in keep:
            path.unlink()
            removed += 1
    return removed


def _write_csv(path: Path, columns: Sequence[str], rows: list[dict[str, object]]) -> None:
    with atomic_open(path, "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
