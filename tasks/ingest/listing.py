"""The source listing: every regular file under `ingest.source`, streamed into the run's scratch
database (`tasks.ingest.workspace`) with its size and mtime, and digested for the run's signature.

One `scandir` pass with one stat per file and no per-file `Path` objects: on an unchanged archive this
listing is most of a re-run's work. Rows go to SQLite in batches of BATCH, so memory holds one batch
and the folders still to visit, never the whole listing.

A path that is not valid UTF-8 (a Latin-1 name from an old Windows share: `M\xfcller.dcm`) cannot be
stored or written to the UTF-8 tables; it goes to table `misnamed`, under its name with the bad bytes
escaped, and the stage quarantines it (one file, never the run).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import xxhash

from tasks.common.paths import printable_path
from tasks.ingest.labels import FOLDERS
from tasks.ingest.settings import IngestSettings

BATCH = 4096  # rows per insert


def list_sources(settings: IngestSettings, db: sqlite3.Connection) -> tuple[int, str]:
    """Fill table `listing` (relative POSIX path, size, mtime_ns) with every regular file under the
    source (hidden files and the labels CSV excluded); returns (files, digest of the listing in path
    order). Symlinks to files are listed (decoding refuses those that leave the source); symlinked
    folders are not descended into."""
    for table in ("listing", "misnamed"):
        db.execute(
            f"CREATE TABLE {table} (relative TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER) WITHOUT ROWID"
        )
    labels_file = None if settings.labels == FOLDERS else (settings.source / settings.labels).resolve()
    rows: list[tuple[str, int, int]] = []
    folders = [("", os.fspath(settings.source))]
    while folders:
        prefix, folder = folders.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    folders.append((f"{prefix}{entry.name}/", entry.path))
                elif _is_file(entry) and not (
                    labels_file
                    and entry.name == labels_file.name
                    and Path(entry.path).resolve() == labels_file
                ):
                    stat = entry.stat()
                    relative = prefix + entry.name
                    escaped = relative if relative.isascii() else printable_path(relative)
                    if escaped != relative:  # not valid UTF-8: its bad bytes came escaped
                        db.execute(
                            "INSERT OR REPLACE INTO misnamed VALUES (?, ?, ?)",
                            (escaped, stat.st_size, stat.st_mtime_ns),
                        )
                        continue
                    rows.append((relative, stat.st_size, stat.st_mtime_ns))
                    if len(rows) >= BATCH:
                        db.executemany("INSERT INTO listing VALUES (?, ?, ?)", rows)
                        rows.clear()
    db.executemany("INSERT INTO listing VALUES (?, ?, ?)", rows)
    db.commit()
    digest = xxhash.xxh3_128()
    count = 0
    every = (
        "SELECT relative, size, mtime_ns FROM listing UNION ALL SELECT relative, size, mtime_ns FROM misnamed"
    )
    for name, size, mtime_ns in db.execute(f"{every} ORDER BY relative"):
        digest.update(f"{name}\0{size}\0{mtime_ns}\n".encode())
        count += 1
    return count, digest.hexdigest()


def _is_file(entry: os.DirEntry[str]) -> bool:
    """A regular file, or a symlink to one; False for symlink loops and dangling links (as `Path.is_file`)."""
    try:
        return entry.is_file() and bool(entry.stat())
    except OSError:
        return False
