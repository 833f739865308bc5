"""Planning a run in SQL: reuse what is unchanged, hash only what changed, and list what to decode.

A file is reused when the previous state has it with the same size and mtime, or, failing that, has
its content (by hash) at any path: moved, copied or touched files decode no more. Either way only
when the store still holds every image it refers to, whole: someone may have deleted a shard, and a
power cut after a run can leave one short (shards are not fsynced one by one). What is left becomes
jobs, one per distinct content (identical new files decode once when their hash is known, else each
on its own), in path order. All of it runs over the workspace's tables (`tasks.ingest.workspace`):
memory holds one page of paths at a time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tasks.common.hashing import file_content_hash
from tasks.common.shards import shard_sizes
from tasks.ingest.settings import IngestSettings
from tasks.ingest.state import FILE_COLUMNS, IMAGE_COLUMNS
from tasks.ingest.worker import Job

PAGE = 1024  # paths hashed, or jobs handed out, per query

# Every image of old file F is whole in the store (table `present`: shard -> size).
STORED = (
    "NOT EXISTS (SELECT 1 FROM old.images I LEFT JOIN present P ON P.shard = I.shard"
    " WHERE I.relative = F.relative AND IFNULL(P.size, -1) < I.start + I.nbytes)"
)


def plan(settings: IngestSettings, db: sqlite3.Connection, images_dir: Path) -> tuple[int, int]:
    """Copy reused files from `old` into `new`, and fill table `todo` with the rest; returns (files
    reused, distinct jobs to decode)."""
    db.execute("CREATE TABLE present (shard TEXT PRIMARY KEY, size INTEGER) WITHOUT ROWID")
    db.executemany("INSERT INTO present VALUES (?, ?)", shard_sizes(images_dir).items())
    db.execute(
        f"INSERT INTO new.files SELECT F.* FROM listing L JOIN old.files F ON F.relative = L.relative"
        f" AND F.size = L.size AND F.mtime_ns = L.mtime_ns WHERE {STORED}"
    )
    db.execute("INSERT INTO new.images SELECT I.* FROM new.files N JOIN old.images I USING (relative)")
    # `digest`: the content hash when computed, else ""; `key`: what identical jobs share.
    db.execute(
        "CREATE TABLE todo (relative TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,"
        " digest TEXT DEFAULT '', key TEXT, lead INTEGER DEFAULT 0) WITHOUT ROWID"
    )
    db.execute(
        "INSERT INTO todo (relative, size, mtime_ns) SELECT relative, size, mtime_ns FROM listing L"
        " WHERE NOT EXISTS (SELECT 1 FROM new.files N WHERE N.relative = L.relative)"
    )
    # The previous content that can stand in for a new path (the last path in order, as before).
    db.execute("CREATE TABLE known (source_hash TEXT PRIMARY KEY, relative TEXT) WITHOUT ROWID")
    db.execute(
        f"INSERT INTO known SELECT source_hash, MAX(relative) FROM old.files F"
        f" WHERE source_hash != '' AND {STORED} GROUP BY source_hash"
    )
    if db.execute("SELECT 1 FROM known LIMIT 1").fetchone():  # content may come back moved or touched
        _hash_todo(settings, db)
        _reuse_by_content(db)
    db.execute("UPDATE todo SET key = CASE WHEN digest != '' THEN digest ELSE relative END")
    db.execute("CREATE INDEX todo_by_key ON todo (key, relative)")
    db.execute("UPDATE todo SET lead = 1 WHERE relative IN (SELECT MIN(relative) FROM todo GROUP BY key)")
    db.commit()
    reused = db.execute("SELECT COUNT(*) FROM new.files").fetchone()[0]
    return reused, db.execute("SELECT COUNT(*) FROM todo WHERE lead").fetchone()[0]


def _hash_todo(settings: IngestSettings, db: sqlite3.Connection) -> None:
    """Content-hash every file left to do, a page at a time (reads overlap in threads)."""
    last = ""
    with ThreadPoolExecutor(max_workers=4) as pool:
        while page := [
            row[0]
            for row in db.execute(
                "SELECT relative FROM todo WHERE relative > ? ORDER BY relative LIMIT ?", (last, PAGE)
            )
        ]:
            digests = pool.map(lambda rel: file_content_hash(settings.source / rel), page)
            db.executemany("UPDATE todo SET digest = ? WHERE relative = ?", zip(digests, page, strict=True))
            last = page[-1]


def _reuse_by_content(db: sqlite3.Connection) -> None:
    """Files whose content the previous state knows: its state, with their own size and mtime."""
    source = (
        "FROM todo T JOIN known K ON K.source_hash = T.digest JOIN old.{table} X ON X.relative = K.relative"
    )
    for table, columns in (("files", FILE_COLUMNS), ("images", IMAGE_COLUMNS)):
        db.execute(f"INSERT INTO new.{table} SELECT {_own(columns)} {source.format(table=table)}")
    db.execute("DELETE FROM todo WHERE digest IN (SELECT source_hash FROM known)")


def _own(columns: str) -> str:
    """`columns` of the old file (X), except that path, size and mtime are the new file's (T)."""
    own = {"relative", "size", "mtime_ns"}
    return ", ".join(f"T.{name}" if name in own else f"X.{name}" for name in columns.split(", "))


def jobs(settings: IngestSettings, db: sqlite3.Connection, images_dir: Path) -> Iterator[Job]:
    """One job per distinct content, in path order (fetched a page at a time: no cursor stays open
    while the caller writes outcomes)."""
    last = ""
    while page := db.execute(
        "SELECT relative, digest, size, mtime_ns FROM todo WHERE lead AND relative > ? ORDER BY relative"
        " LIMIT ?",
        (last, PAGE),
    ).fetchall():
        for relative, digest, size, mtime_ns in page:
            yield Job(settings.source / relative, relative, digest, size, mtime_ns, images_dir, settings)
        last = page[-1][0]


def same_content(db: sqlite3.Connection, job: Job) -> list[tuple[str, int, int]]:
    """(relative, size, mtime_ns) of every path a job's outcome stands for, the job's own included."""
    return db.execute(
        "SELECT relative, size, mtime_ns FROM todo WHERE key = ?", (job.source_hash or job.relative,)
    ).fetchall()
