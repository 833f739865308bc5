"""The ingest stage: find source files, decode only what is new, and write the pseudonymised store.

Flow: list files -> stop there if nothing changed since the last run (the state's signature) -> reuse
unchanged files (same size+mtime, or same content hash) -> decode the rest in isolated workers, into
image shards -> pseudonymise -> drop stored images no file refers to -> assemble tables -> write
outputs and state -> summary. Exits cleanly unless more than `ingest.max_failed_fraction` of the
files were quarantined.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from tasks.common.errors import RadflowError
from tasks.common.hashing import file_content_hash
from tasks.common.paths import project_paths
from tasks.common.shards import Record, compact, holds, shard_sizes
from tasks.ingest.assemble import assemble
from tasks.ingest.labels import FOLDERS, LabelIndex
from tasks.ingest.overview import Overview, overview
from tasks.ingest.progress import DecodeProgress, Summary, reason_category
from tasks.ingest.pseudonym import load_salt, pseudonym, salt_check
from tasks.ingest.records import FileState, ImageRecord, SourceKeys
from tasks.ingest.runner import run_jobs
from tasks.ingest.series import select_series_slices
from tasks.ingest.settings import IngestSettings, load_settings
from tasks.ingest.state import last_counts, load_state, run_signature, save_state
from tasks.ingest.store import IMAGES_DIR, PRIVATE_TABLES, write_tables
from tasks.ingest.worker import Job, Reported

log = logging.getLogger(__name__)


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
    sources = _list_sources(settings)
    watched = [ingested / "manifest.csv", *(private / name for name in PRIVATE_TABLES)]
    if settings.labels != FOLDERS:
        watched.append(settings.source / settings.labels)
    settings_key = f"{fingerprint}|{settings!r}"  # the decoder version too: an upgrade re-decodes
    counts = last_counts(private, run_signature(settings_key, sources, images_dir, watched))
    if counts is None:
        current, summary = _update(settings, sources, labels, salt, fingerprint, ingested, private)
        signature = run_signature(settings_key, sources, images_dir, watched)  # as this run leaves it
        save_state(private, fingerprint, current, signature, _counts(summary))
    else:
        log.info("ingest: nothing changed since the last run")
        summary = _unchanged(counts)
    summary.render()
    failed = sum(summary.quarantined.values())
    if sources and failed / len(sources) > settings.max_failed_fraction:
        raise RadflowError(
            f"{failed} of {len(sources)} files were quarantined, more than ingest.max_failed_fraction="
            f"{settings.max_failed_fraction}; see {private / 'quarantine.csv'}"
        )
    return summary


def _update(
    settings: IngestSettings,
    sources: dict[str, os.stat_result],
    labels: LabelIndex,
    salt: bytes,
    fingerprint: str,
    ingested: Path,
    private: Path,
) -> tuple[dict[str, FileState], Summary]:
    """Decode what is new or changed, then rewrite the store and tables to match the sources; returns
    the state to save and the counts."""
    images_dir = ingested / IMAGES_DIR
    previous = load_state(private, fingerprint)
    current, jobs = _plan(settings, sources, previous, images_dir)
    summary = Summary(files=len(sources), reused=len(current))
    _decode(settings, jobs, current, salt, summary)
    current = _compact_store(images_dir, current)
    summary.pruned = len(_image_ids(previous) - _image_ids(current))
    tables = assemble(select_series_slices(current, settings.slice_strategy, settings.slices), labels, salt)
    write_tables(tables, ingested, private)
    summary.images = len(tables.manifest)
    summary.unlabeled = sum(1 for row in tables.manifest if not row["label"])
    for row in tables.quarantine:  # a row naming a quarantined or skipped file names a file: not unused
        labels.lookup(str(row["source_path"]))
    summary.label_rows = sum(len(rows) for rows in labels.rows.values())
    summary.unused_label_rows = labels.unused_rows()
    summary.overview = overview(tables.manifest, settings.labels)
    for row in tables.quarantine:
        counter = summary.quarantined if row["disposition"] == "quarantined" else summary.skipped
        counter[reason_category(str(row["reason"]))] += 1
    return current, summary


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


def _list_sources(settings: IngestSettings) -> dict[str, os.stat_result]:
    """Every regular file under the source (hidden files and the labels CSV excluded): POSIX path
    relative to the source -> its stat.

    One `scandir` pass with one stat per file and no per-file `Path` objects: on an unchanged archive
    this listing is most of a re-run's work. Symlinks to files are listed (decoding refuses those that
    leave the source); symlinked folders are not descended into.
    """
    labels_file = None if settings.labels == FOLDERS else (settings.source / settings.labels).resolve()
    found: dict[str, os.stat_result] = {}
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
                    found[prefix + entry.name] = entry.stat()
    return dict(sorted(found.items()))


def _is_file(entry: os.DirEntry[str]) -> bool:
    """A regular file, or a symlink to one; False for symlink loops and dangling links (as `Path.is_file`)."""
    try:
        return entry.is_file() and bool(entry.stat())
    except OSError:
        return False


def _plan(
    settings: IngestSettings,
    sources: dict[str, os.stat_result],
    previous: dict[str, FileState],
    images_dir: Path,
) -> tuple[dict[str, FileState], dict[str, list[Job]]]:
    """Reuse what is unchanged; return (reused states, jobs to decode grouped by content hash)."""
    present = shard_sizes(images_dir)
    current: dict[str, FileState] = {}
    to_hash: list[str] = []
    for relative, stat in sources.items():
        known = previous.get(relative)
        if (
            known
            and (known.size, known.mtime_ns) == (stat.st_size, stat.st_mtime_ns)
            and _stored(known, present)
        ):
            current[relative] = known
        else:
            to_hash.append(relative)
    by_content = {
        state.source_hash: state
        for state in previous.values()
        if state.source_hash and _stored(state, present)
    }
    hashes: dict[str, str] = {}
    if by_content and to_hash:  # content seen before may come back moved or touched: hash to recognise it
        with ThreadPoolExecutor(max_workers=4) as pool:  # reads overlap
            digests = pool.map(lambda rel: file_content_hash(settings.source / rel), to_hash)
            hashes = dict(zip(to_hash, digests, strict=True))
    jobs: dict[str, list[Job]] = {}
    for relative in to_hash:
        stat, digest = sources[relative], hashes.get(relative, "")
        if digest in by_content:  # moved, copied or touched: same content, no decode
            known = by_content[digest]
            current[relative] = replace(known, size=stat.st_size, mtime_ns=stat.st_mtime_ns)
        else:  # identical new files decode once when their hash is known, else each on its own
            jobs.setdefault(digest or relative, []).append(
                Job(
                    settings.source / relative,
                    relative,
                    digest,
                    stat.st_size,
                    stat.st_mtime_ns,
                    images_dir,
                    settings,
                )
            )
    return current, jobs


def _stored(state: FileState, present: dict[str, int]) -> bool:
    """Whether every image a state refers to is in the store, whole: someone may have deleted a shard,
    and a power cut after a run can leave one short (shards are not fsynced one by one)."""
    return all(holds(present, image.record()) for image in state.images)


def _compact_store(images_dir: Path, current: dict[str, FileState]) -> dict[str, FileState]:
    """Drop stored images no current file refers to (deleted or changed sources: their pixels must go),
    and point the states at the records that moved. Images of series instances the slice strategy
    leaves out stay stored, so a re-run need not decode them."""
    moved = compact(images_dir, [image.record() for state in current.values() for image in state.images])
    if not moved:
        return current
    return {
        relative: replace(
            state,
            images=[_relocated(image, moved.get((image.shard, image.offset))) for image in state.images],
        )
        for relative, state in current.items()
    }


def _image_ids(files: dict[str, FileState]) -> set[str]:
    return {image.image_id for state in files.values() for image in state.images}


def _relocated(image: ImageRecord, record: Record | None) -> ImageRecord:
    return image if record is None else replace(image, shard=record.shard, offset=record.offset)


def _decode(
    settings: IngestSettings,
    jobs: dict[str, list[Job]],
    current: dict[str, FileState],
    salt: bytes,
    summary: Summary,
) -> None:
    """Decode one job per distinct content; every path holding that content gets the outcome, with
    its own size and mtime as listed."""
    unique = [group[0] for group in jobs.values()]
    with DecodeProgress(total=len(unique)) as bar:

        def on_done(job: Job, report: Reported, printed: str) -> None:
            state = _kept(*report, printed, salt)
            for same in jobs[job.source_hash or job.relative]:
                current[same.relative] = (
                    state if same is job else replace(state, size=same.size, mtime_ns=same.mtime_ns)
                )
            summary.decoded += 1
            bar.advance()

        run_jobs(unique, settings, on_done)
    log.info("ingest decoded %d distinct files", len(unique))


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
