"""Incremental ingest: what each source file was (size, mtime, content hash) and what it decoded to.

Kept in `paths.private/ingest_state.sqlite` (operator-only: it is keyed by source path); identifiers in
it are already pseudonymised. An SQLite database rather than one JSON document, so that no run holds
every file's state in memory: the stage streams states in and out, and lets SQL do the joins,
grouping and sorting (an archive may hold 10^6 files; issue #15).

Tables: `header` (the fingerprint of the settings and salt the files were decoded under -- another
fingerprint discards them -- and the signature of everything the run read and wrote, with its
counts: a run that finds the same signature has nothing to do and reads only the header), `files`
(one row per source path: the columns the stage queries, and the rest of its `FileState` as JSON) and
`images` (one row per image a file decoded to: where it is in the store).

A run builds its state in a new database beside the old one and renames it into place when complete
(`tasks.ingest.workspace`), so a killed run leaves the previous state whole.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import xxhash

from tasks.common.shards import shard_sizes
from tasks.ingest.records import FileState, ImageMeta, ImageRecord

STATE_FILE = "ingest_state.sqlite"
OLD_STATE_FILE = "ingest_state.json"  # what versions before the database kept: ignored, then deleted

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS {db}.header (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID",
    # Columns the stage queries, then the rest of the FileState (`_body`).
    "CREATE TABLE IF NOT EXISTS {db}.files (relative TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,"
    " source_hash TEXT, disposition TEXT, series_id TEXT, modality TEXT, nimages INTEGER, body TEXT)"
    " WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS {db}.images (relative TEXT, idx INTEGER, image_id TEXT, frame INTEGER,"
    " height INTEGER, width INTEGER, pixel_hash TEXT, shard TEXT, start INTEGER, nbytes INTEGER,"
    " PRIMARY KEY (relative, idx)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS {db}.files_by_hash ON files (source_hash)",
    "CREATE INDEX IF NOT EXISTS {db}.files_by_series ON files (series_id)",  # series selection, in order
    "CREATE INDEX IF NOT EXISTS {db}.images_by_place ON images (shard, start)",
    "CREATE INDEX IF NOT EXISTS {db}.images_by_id ON images (image_id)",
)
FILE_COLUMNS = "relative, size, mtime_ns, source_hash, disposition, series_id, modality, nimages, body"
IMAGE_COLUMNS = "relative, idx, image_id, frame, height, width, pixel_hash, shard, start, nbytes"
_COLUMNS = ("size", "mtime_ns", "source_hash", "disposition", "images")  # FileState fields not in the body


def create_schema(db: sqlite3.Connection, name: str) -> None:
    """Create the state's tables in the attached database `name` (if absent)."""
    for statement in SCHEMA:
        db.execute(statement.format(db=name))


def run_signature(settings_key: str, listing: str, images_dir: Path, watched: list[Path]) -> str:
    """Hash of: the settings (and salt check), the listing's digest (`tasks.ingest.listing`: every
    source's name, size and mtime), every stored shard's size, and the size and mtime of each watched
    file (labels CSV, tables)."""
    parts = [settings_key, listing, json.dumps(sorted(shard_sizes(images_dir).items()))]
    for path in watched:
        try:
            stat = path.stat()
            parts.append(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}")
        except OSError:
            parts.append(f"{path}\0absent")
    return xxhash.xxh3_128_hexdigest("\n".join(parts).encode())


def last_counts(private_dir: Path, signature: str) -> dict[str, Any] | None:
    """The counts the last run saved, when it left everything with this signature; else None. Reads
    the header only."""
    try:
        with _read_only(private_dir / STATE_FILE) as db:
            header = dict(db.execute("SELECT key, value FROM header WHERE key IN ('signature', 'counts')"))
        counts: dict[str, Any] = json.loads(header["counts"])
        return counts if json.loads(header["signature"]) == signature else None
    except (OSError, sqlite3.Error, ValueError, KeyError, TypeError):
        return None


def fingerprint_of(path: Path) -> str | None:
    """The fingerprint a state database was made under; None when absent or unreadable."""
    try:
        with _read_only(path) as db:
            row = db.execute("SELECT value FROM header WHERE key = 'fingerprint'").fetchone()
            db.execute("SELECT 1 FROM files, images LIMIT 1").fetchall()  # both tables there
        return str(json.loads(row[0])) if row else None
    except (OSError, sqlite3.Error, ValueError, TypeError):
        return None


def _read_only(path: Path) -> contextlib.closing[sqlite3.Connection]:
    """A read-only connection, closed when the `with` block ends (sqlite3's own context manager only
    commits). Never creates the file."""
    if not path.is_file():
        raise FileNotFoundError(path)
    return contextlib.closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True))


def write_header(db: sqlite3.Connection, name: str, values: dict[str, Any]) -> None:
    """Set header values (each stored as JSON) in database `name`."""
    db.executemany(
        f"INSERT OR REPLACE INTO {name}.header VALUES (?, ?)",
        [(key, json.dumps(value, separators=(",", ":"))) for key, value in values.items()],
    )


def put(db: sqlite3.Connection, name: str, relative: str, state: FileState) -> None:
    """Store one file's state in database `name`."""
    body = {key: value for key, value in vars(state).items() if key not in _COLUMNS}
    body["meta"] = vars(state.meta)
    db.execute(
        f"INSERT INTO {name}.files ({FILE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            relative,
            state.size,
            state.mtime_ns,
            state.source_hash,
            state.disposition,
            state.series_id,
            state.meta.modality,
            len(state.images),
            json.dumps(body, separators=(",", ":")),
        ),
    )
    db.executemany(
        f"INSERT INTO {name}.images ({IMAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (relative, index, *(getattr(image, key) for key in ImageRecord.__dataclass_fields__))
            for index, image in enumerate(state.images)
        ],
    )


def states(db: sqlite3.Connection, name: str) -> Iterator[tuple[str, FileState]]:
    """Every file's state in database `name`, in path order: two ordered scans merged, one file's
    images at a time in memory."""
    files = db.execute(
        f"SELECT relative, size, mtime_ns, source_hash, disposition, body FROM {name}.files ORDER BY relative"
    )
    images = db.execute(
        f"SELECT relative, image_id, frame, height, width, pixel_hash, shard, start, nbytes"
        f" FROM {name}.images ORDER BY relative, idx"
    )
    pending = images.fetchone()
    for relative, size, mtime_ns, source_hash, disposition, body in files:
        records = []
        while pending is not None and pending[0] < relative:  # an image row without its file: never read
            pending = images.fetchone()
        while pending is not None and pending[0] == relative:
            records.append(ImageRecord(*pending[1:]))
            pending = images.fetchone()
        fields = json.loads(body)
        meta = ImageMeta(**fields.pop("meta"))
        yield (
            relative,
            FileState(size, mtime_ns, source_hash, disposition, **fields, meta=meta, images=records),
        )
