"""Writing the stage's tables: manifest under `paths.ingested` (next to the image shards, which the
workers write), linkage + quarantine under `paths.private`. Every table is written atomically, and
only when its content changed (an unchanged re-run rewrites and fsyncs nothing)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from tasks.common.atomic import write_text
from tasks.ingest.assemble import LINKAGE_COLUMNS, MANIFEST_COLUMNS, QUARANTINE_COLUMNS, Tables

IMAGES_DIR = "images"
PRIVATE_TABLES = ("linkage.csv", "quarantine.csv")


def write_tables(tables: Tables, ingested: Path, private: Path) -> None:
    """manifest.csv (sorted by image_id), linkage.csv and quarantine.csv."""
    _write_csv(ingested / "manifest.csv", MANIFEST_COLUMNS, tables.manifest)
    for name, columns, rows in zip(
        PRIVATE_TABLES,
        (LINKAGE_COLUMNS, QUARANTINE_COLUMNS),
        (tables.linkage, tables.quarantine),
        strict=True,
    ):
        _write_csv(private / name, columns, rows)


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
