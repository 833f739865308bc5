"""Writing the stage's outputs: manifest + images under `paths.ingested`, linkage + quarantine under
`paths.private`. Every file is written atomically, and only when its content changed (an unchanged re-run
rewrites and fsyncs nothing); images no longer in the manifest are removed."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path

from tasks.atomic import write_text
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
    removed = 0
    for name in os.listdir(images_dir):  # one listing; no per-file Path objects on a 2,000-image store
        stale = name.endswith(".npy") and name[: -len(".npy")] not in keep
        if stale or (name.startswith(".") and name.endswith(".tmp")):
            (images_dir / name).unlink(missing_ok=True)
            removed += stale
    return removed


def _write_csv(path: Path, columns: Sequence[str], rows: list[dict[str, object]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([row[column] for column in columns] for row in rows)
    text = buffer.getvalue()
    try:
        if path.read_text() == text:
            return
    except (OSError, UnicodeDecodeError):  # absent or unreadable: write it
        pass
    write_text(path, text)
