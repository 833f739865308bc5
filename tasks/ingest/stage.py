"""The ingest stage: find source files, decode only what is new, and write the pseudonymised store.

Flow: list files -> stop there if nothing changed since the last run (the state's signature) -> reuse
unchanged files (same size+mtime, or same content hash) -> decode the rest in isolated workers, into
image shards -> pseudonymise -> drop stored images no file refers to -> assemble tables -> write
outputs and state -> summary. Exits cleanly unless more than `ingest.max_failed_fraction` of the
files were quarantined.

Every per-file and per-image collection lives in SQLite (`tasks.ingest.workspace`: the listing, the
previous and new state, the tables being assembled), streamed a page or a file at a time, so the
stage's memory stays bounded as the archive grows (issue #15): what it holds grows with the shards,
classes and splits, not with the files.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from tasks.common.errors import RadflowError
from tasks.common.paths import project_paths
from tasks.common.shards import Record, compact_each
from tasks.ingest.assemble import LINKAGE_COLUMNS, QUARANTINE_COLUMNS, assemble
from tasks.ingest.labels import FOLDERS, LabelIndex
from tasks.ingest.listing import list_sources
from tasks.ingest.overview import Overview, overview
from tasks.ingest.plan import jobs, plan, same_content
from tasks.ingest.progress import DecodeProgress, Summary
from tasks.ingest.pseudonym import load_salt, pseudonym, salt_check
from tasks.ingest.records import FileState, SourceKeys
from tasks.ingest.runner import run_jobs
from tasks.ingest.series import select_series_slices
from tasks.ingest.settings import IngestSettings, load_settings
from tasks.ingest.state import last_counts, put, run_signature, write_header
from tasks.ingest.store import IMAGES_DIR, PRIVATE_TABLES, CsvTable, manifest_table
from tasks.ingest.worker import Job, Reported
from tasks.ingest.workspace import Workspace

log = logging.getLogger(__name__)
MISNAMED = (
    "file name not valid UTF-8: rename it (e.g. with convmv) to ingest it; its bad bytes are shown escaped"
)


def main(params: dict[str, Any]) -> None:
    """`radflow stage ingest`: run the stage with params.yaml's `ingest` and `paths` sections."""
    paths = project_paths(params)
    run_ingest(load_settings(params), paths.ingested, paths.private)


def run_ingest(settings: IngestSettings, ingested: Path, private: Path) -> Summary:
    """Ingest `settings.source` into `ingested` (+ operator-only `private`); returns the counts."""
    if not settings.source.is_dir():
        raise RadflowError(f"ingest.source {settings.source} is not a folder (looked in {Path.cwd()})")
    salt = load_salt(settings.salt_env, private)
    labels = LabelIndex(settings, salt)  # fails early on a bad labels file
    fingerprint = f"{settings.decode_fingerprint()}|{salt_check(salt)}"
    images_dir = ingested / IMAGES_DIR
    images_dir.mkdir(parents=True, exist_ok=True)
    watched = [ingested / "manifest.csv", *(private / name for name in PRIVATE_TABLES)]
    if settings.labels != FOLDERS:
        watched.append(settings.source / settings.labels)
    settings_key = f"{fingerprint}|{settings!r}"  # the decoder version too: an upgrade re-decodes
    with Workspace(private) as work:
        files, listing = list_sources(settings, work.db)
        counts = last_counts(private, run_signature(settings_key, listing, images_dir, watched))
        if counts is None:
            work.begin_update(fingerprint)
            summary = _update(settings, work.db, files, labels, salt, ingested, private)
            signature = run_signature(settings_key, listing, images_dir, watched)  # as this run leaves it
            write_header(
                work.db,
                "new",
                {"fingerprint": fingerprint, "signature": signature, "counts": _counts(summary)},
            )
            work.publish()
        else:
            log.info("ingest: nothing changed since the last run")
            summary = _unchanged(counts)
    summary.render()
    failed = sum(summary.quarantined.values())
    if files and failed / files > settings.max_failed_fraction:
        raise RadflowError(
            f"{failed} of {files} files were quarantined, more than ingest.max_failed_fraction="
            f"{settings.max_failed_fraction}; see {private / 'quarantine.csv'}"
        )
    return summary


def _update(
    settings: IngestSettings,
    db: sqlite3.Connection,
    files: int,
    labels: LabelIndex,
    salt: bytes,
    ingested: Path,
    private: Path,
) -> Summary:
    """Decode what is new or changed, then rewrite the store and tables to match the sources; the
    state to save is left in the workspace's `new` database. Returns the counts."""
    images_dir = ingested / IMAGES_DIR
    reused, distinct = plan(settings, db, images_dir)
    _quarantine_misnamed(db)
    summary = Summary(files=files, reused=reused)
    _decode(settings, db, distinct, images_dir, salt, summary)
    _compact_store(db, images_dir)
    summary.pruned = db.execute(
        "SELECT COUNT(*) FROM (SELECT image_id FROM old.images EXCEPT SELECT image_id FROM new.images)"
    ).fetchone()[0]
    select_series_slices(db, settings.slice_strategy, settings.slices)
    with (
        CsvTable(private / PRIVATE_TABLES[0], LINKAGE_COLUMNS) as linkage,
        CsvTable(private / PRIVATE_TABLES[1], QUARANTINE_COLUMNS) as quarantine,
    ):
        problems = assemble(db, labels, salt, linkage, quarantine)
        with manifest_table(db, ingested / "manifest.csv") as manifest:
            for table in (manifest, linkage, quarantine):
                table.publish()
    summary.quarantined, summary.skipped = problems["quarantined"], problems["skipped"]
    summary.images, summary.unlabeled = db.execute(
        "SELECT COUNT(*), COUNT(*) FILTER (WHERE label = '') FROM manifest"
    ).fetchone()
    summary.label_rows = sum(len(rows) for rows in labels.rows.values())
    summary.unused_label_rows = labels.unused_rows()
    summary.overview = overview(db, settings.labels)
    return summary


def _counts(summary: Summary) -> dict[str, Any]:
    """The summary as JSON for the state's header (Counters become dicts, the overview a dict)."""
    counts = {
        key: dict(value) if isinstance(value, Counter) else value for key, value in vars(summary).items()
    }
    return {**counts, "overview": asdict(summary.overview)}


def _unchanged(counts: dict[str, Any]) -> Summary:
    """The summary of a run with nothing to do: the last run's counts, every file reused."""
    fields: dict[str, Any] = {
        key: Counter(value) if isinstance(value, dict) else value
        for key, value in counts.items()
        if key in Summary.__dataclass_fields__ and key != "overview"  # and not what an older version kept
    }
    summary = Summary(**fields, overview=Overview(**counts.get("overview", {})))
    return replace(summary, decoded=0, reused=summary.files, pruned=0)


def _quarantine_misnamed(db: sqlite3.Connection) -> None:
    """Files whose path is not valid UTF-8 (`tasks.ingest.listing`): quarantined undecoded, by name."""
    for relative, size, mtime_ns in db.execute("SELECT * FROM misnamed").fetchall():
        put(db, "new", relative, FileState(size, mtime_ns, "", "quarantined", MISNAMED, "UnusableFileName"))


def _compact_store(db: sqlite3.Connection, images_dir: Path) -> None:
    """Drop stored images no current file refers to (deleted or changed sources: their pixels must go),
    and point the states at the records that moved. Images of series instances the slice strategy
    leaves out stay stored, so a re-run need not decode them. One shard's records in memory at a time;
    the moves are applied once every shard is done (each shard is judged by the records as they were)."""
    db.execute(
        "CREATE TABLE moves (shard TEXT, start INTEGER, new_shard TEXT, new_start INTEGER, nbytes INTEGER,"
        " PRIMARY KEY (shard, start)) WITHOUT ROWID"
    )

    def live_in(name: str) -> list[Record]:
        query = "SELECT image_id, shard, start, nbytes FROM new.images WHERE shard = ? GROUP BY start"
        return [Record(*row) for row in db.execute(f"{query} ORDER BY start", (name,))]

    for (shard, start), record in compact_each(images_dir, live_in):
        db.execute(
            "INSERT INTO moves VALUES (?, ?, ?, ?, ?)",
            (shard, start, record.shard, record.offset, record.nbytes),
        )
    db.execute(
        "UPDATE new.images SET shard = M.new_shard, start = M.new_start, nbytes = M.nbytes FROM moves M"
        " WHERE images.shard = M.shard AND images.start = M.start"
    )
    db.commit()


def _decode(
    settings: IngestSettings,
    db: sqlite3.Connection,
    distinct: int,
    images_dir: Path,
    salt: bytes,
    summary: Summary,
) -> None:
    """Decode one job per distinct content; every path holding that content gets the outcome, with
    its own size and mtime as listed. Outcomes go to the new state as they come."""
    with DecodeProgress(total=distinct) as bar:

        def on_done(job: Job, report: Reported, printed: str) -> None:
            state = _kept(*report, printed, salt)
            for relative, size, mtime_ns in same_content(db, job):
                same = state if relative == job.relative else replace(state, size=size, mtime_ns=mtime_ns)
                put(db, "new", relative, same)
            summary.decoded += 1
            bar.advance()

        run_jobs(jobs(settings, db, images_dir), settings, on_done)
    db.commit()
    log.info("ingest decoded %d distinct files", distinct)


def _kept(state: FileState, keys: SourceKeys, printed: str, salt: bytes) -> FileState:
    """A worker's report as the stage keeps it: its raw identifiers turned into salted pseudonyms (the
    raw keys end here), and what the decoder printed if the file failed (the operator's detail)."""
    detail = printed if state.disposition != "ok" else ""
    if keys == SourceKeys() and not detail:
        return state

    def alias(prefix: str, value: str) -> str:
        return pseudonym(prefix, value, salt) if value else ""

    return replace(
        state,
        detail=detail,
        patient_id=alias("P", keys.patient),
        study_id=alias("S", keys.study),
        series_id=alias("R", keys.series),
        instance_id=alias("I", keys.instance),
        accession_id=alias("A", keys.accession),
    )
