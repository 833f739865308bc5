"""Where one ingest run keeps its per-file data: SQLite databases on disk, never Python collections, so
the stage's memory does not grow with the archive (SQLite's page cache is bounded: CACHE_KIB each).

One connection; its `main` database is the run's scratch (the listing, the tables being assembled),
`old` the previous state (read-only; an empty one when absent, unreadable or made under another
fingerprint), `new` the state being built. Scratch and new state are files in `paths.private`
(they hold source paths, which may name patients: never in /tmp), written without a journal or
fsyncs: a killed run's leftovers are garbage, deleted by the next run. `publish` fsyncs the new state
and renames it over the old one, so the state on disk is always a whole run's.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from types import TracebackType

from tasks.common.atomic import temp_path
from tasks.common.paths import make_private
from tasks.ingest.state import OLD_STATE_FILE, STATE_FILE, create_schema, fingerprint_of

SCRATCH_FILE = "ingest_scratch.sqlite"
CACHE_KIB = 16 * 1024  # page cache per database: enough for the B-tree levels that matter


class Workspace:
    """The run's databases (see the module docstring); use as a context manager."""

    def __init__(self, private: Path) -> None:
        make_private(private)
        for name in (SCRATCH_FILE, STATE_FILE):  # a killed run's files (nothing else writes these names)
            for leftover in private.glob(f".{name}.*.tmp"):
                leftover.unlink(missing_ok=True)
        self.private = private
        self.scratch = temp_path(private / SCRATCH_FILE)
        self.new_state = temp_path(private / STATE_FILE)
        self.db = _connect(self.scratch)
        # Sorts that spill go to private too (the indexes spare most, not all). A process-wide setting,
        # not safe while another thread uses SQLite: the stage runs no other thread (it forks workers).
        self.db.execute("PRAGMA temp_store_directory = '{}'".format(str(private).replace("'", "''")))

    def begin_update(self, fingerprint: str) -> None:
        """Attach the previous state (when made under `fingerprint`) and a new, empty one."""
        previous = self.private / STATE_FILE
        usable = fingerprint_of(previous) == fingerprint
        source = f"{previous.absolute().as_uri()}?mode=ro" if usable else ":memory:"
        self.db.execute("ATTACH DATABASE ? AS old", (source,))
        create_schema(self.db, "old")  # no-op on a usable state, the empty tables otherwise
        self.db.execute(f"PRAGMA old.cache_size = -{CACHE_KIB}")
        self.new_state.unlink(missing_ok=True)
        self.db.execute("ATTACH DATABASE ? AS new", (f"{self.new_state.absolute().as_uri()}",))
        self.db.execute("PRAGMA new.journal_mode = OFF")
        self.db.execute("PRAGMA new.synchronous = OFF")
        self.db.execute(f"PRAGMA new.cache_size = -{CACHE_KIB}")
        create_schema(self.db, "new")
        self.db.commit()

    def publish(self) -> None:
        """Make the new state the state: commit, fsync, rename into place; then drop the old JSON state
        of earlier versions."""
        self.db.commit()
        self.db.execute("DETACH DATABASE new")
        self.db.execute("DETACH DATABASE old")
        with open(self.new_state, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(self.new_state, self.private / STATE_FILE)
        (self.private / OLD_STATE_FILE).unlink(missing_ok=True)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self, error_type: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.db.execute("PRAGMA temp_store_directory = ''")  # the default again, for other SQLite users
        self.db.close()
        self.scratch.unlink(missing_ok=True)
        self.new_state.unlink(missing_ok=True)  # absent once published


def _connect(path: Path) -> sqlite3.Connection:
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path, isolation_level="DEFERRED", uri=True)  # uri: ATTACH takes `file:` URIs
    db.execute("PRAGMA journal_mode = OFF")  # a scratch file: a crash discards it whole
    db.execute("PRAGMA synchronous = OFF")
    db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    db.execute("PRAGMA temp_store = FILE")  # big sorts spill to disk, not memory
    return db
