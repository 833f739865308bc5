"""Writing the stage's tables: manifest under `paths.ingested` (next to the image shards, which the
workers write), linkage + quarantine under `paths.private`. Every table is streamed row by row into a
file beside its own, then renamed into place only when its bytes differ (an unchanged re-run rewrites
and fsyncs nothing), so no table is ever held in memory or seen half-written."""

from __future__ import annotations

import csv
import os
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

from tasks.common.atomic import temp_path
from tasks.ingest.assemble import MANIFEST_COLUMNS

IMAGES_DIR = "images"
PRIVATE_TABLES = ("linkage.csv", "quarantine.csv")
CHUNK = 1 << 20  # bytes compared at a time


class CsvTable:
    """One CSV table being written: `write` rows, then `publish`; a table left unpublished is dropped
    when the context exits."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = temp_path(path)
        self._handle = open(self._tmp, "w")  # noqa: SIM115 (closed by publish or __exit__)
        self._writer = csv.writer(self._handle, lineterminator="\n")
        self._writer.writerow(columns)

    def write(self, row: Sequence[object]) -> None:
        """Append one row (values in column order)."""
        self._writer.writerow(row)

    def write_all(self, rows: Iterable[Sequence[object]]) -> None:
        """Append rows (values in column order)."""
        self._writer.writerows(rows)

    def publish(self) -> None:
        """Put the table in place, unless the file there already holds the same bytes."""
        self._handle.close()
        if _same_bytes(self._tmp, self.path):
            self._tmp.unlink()
            return
        with open(self._tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(self._tmp, self.path)

    def __enter__(self) -> CsvTable:
        return self

    def __exit__(
        self, error_type: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._handle.close()
        self._tmp.unlink(missing_ok=True)  # absent once published


def manifest_table(db: sqlite3.Connection, path: Path) -> CsvTable:
    """manifest.csv from the scratch table `manifest`, sorted by image_id (not yet published)."""
    table = CsvTable(path, MANIFEST_COLUMNS)
    columns = ", ".join(f'"{column}"' for column in MANIFEST_COLUMNS)
    table.write_all(db.execute(f"SELECT {columns} FROM manifest ORDER BY image_id"))
    return table


def _same_bytes(new: Path, old: Path) -> bool:
    """Whether `old` exists and holds exactly `new`'s bytes (compared a chunk at a time; not
    `filecmp.cmp`, whose cache keys on size and mtime and could answer for an earlier temp file)."""
    try:
        if old.stat().st_size != new.stat().st_size:
            return False
        with open(new, "rb") as first, open(old, "rb") as second:
            while chunk := first.read(CHUNK):
                if chunk != second.read(CHUNK):
                    return False
        return True
    except OSError:  # absent or unreadable: write it
        return False
