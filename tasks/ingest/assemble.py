"""From per-file states to the stage's tables: manifest, linkage and quarantine.

Streams the run's new state in path order (`tasks.ingest.state.states`), one file at a time: linkage
and quarantine rows go straight to their CSV writers (path order is their order), manifest rows to the
scratch table `manifest` (one per image id, the first path's; written sorted by image id afterwards),
and the duplicate guard's SOP instances to the scratch table `instances`. Nothing per file or per
image stays in memory.

Labels and CSV/path-naming patient keys are applied here, not at decode time, so editing labels.csv
never forces a re-decode. Each row records where its patient came from (`patient_source`: csv, header,
a naming convention, or empty when nothing named one and the file is its own patient).

Guards: one manifest row per image id (identical files share it), a SOP Instance UID seen with
different pixels is quarantined, and the same SOP with the same pixels is skipped.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Protocol

from tasks.ingest.labels import FileLabel, LabelIndex
from tasks.ingest.patients import FOLDER
from tasks.ingest.progress import reason_category
from tasks.ingest.pseudonym import pseudonym
from tasks.ingest.records import FileState, ImageRecord
from tasks.ingest.state import states

MANIFEST_COLUMNS = (
    "image_id", "patient_id", "patient_source", "study_id", "series_id", "label", "modality", "view",
    "body_part", "photometric", "sex", "age_band", "manufacturer", "height", "width", "spacing_row",
    "spacing_col", "frame", "source_hash", "pixel_hash", "predefined_split", "decode_status", "shard",
    "shard_offset",
)  # fmt: skip
META_COLUMNS = ("modality", "view", "body_part", "photometric", "sex", "age_band", "manufacturer")
LINKAGE_COLUMNS = ("source_path", "frame", "image_id", "source_hash")
QUARANTINE_COLUMNS = ("source_path", "disposition", "reason", "exception_type", "detail")


class RowSink(Protocol):
    """Where rows of a streamed table go (`tasks.ingest.store.CsvTable`)."""

    def write(self, row: Sequence[object]) -> None: ...


def assemble(
    db: sqlite3.Connection, labels: LabelIndex, salt: bytes, linkage: RowSink, quarantine: RowSink
) -> dict[str, Counter[str]]:
    """Build the tables from every current source file (the new state, less the `unselected` series
    instances); returns the quarantine's reasons by category, per disposition ("quarantined",
    "skipped")."""
    columns = ", ".join(f'"{column}"' for column in MANIFEST_COLUMNS)
    db.execute(f"CREATE TABLE manifest ({columns}, PRIMARY KEY (image_id)) WITHOUT ROWID")
    # instance pseudonym:frame -> (pixel hash, image id) first seen
    db.execute("CREATE TABLE instances (key TEXT PRIMARY KEY, pixel_hash TEXT, image_id TEXT) WITHOUT ROWID")
    insert = f"INSERT OR IGNORE INTO manifest VALUES ({', '.join('?' * len(MANIFEST_COLUMNS))})"
    problems: dict[str, Counter[str]] = {"quarantined": Counter(), "skipped": Counter()}
    for relative, state in _selected(db):
        problem: tuple[str, str, str, str, str] | None = None
        if state.disposition != "ok":
            problem = (relative, state.disposition, state.reason, state.exception_type, state.detail)
        else:
            duplicate = _duplicate_instance(db, state)
            problem = (relative, *duplicate, "") if duplicate else None
        if problem:
            quarantine.write(problem)
            labels.mark_listed(relative)  # it names a file: a labels row naming it is not an unused one
            kind = "quarantined" if problem[1] == "quarantined" else "skipped"
            problems[kind][reason_category(str(problem[2]))] += 1
            continue
        given = labels.lookup(relative, state.study_id, state.accession_id)
        for image in state.images:
            linkage.write((relative, image.frame, image.image_id, state.source_hash))
            db.execute(insert, _manifest_row(state, image, given, salt))  # the first path's row stays
    _check_patient_folders(db, salt)
    db.commit()
    return problems


def _selected(db: sqlite3.Connection) -> Iterator[tuple[str, FileState]]:
    """The new state's files in path order, with the series instances left out marked skipped."""
    left_out = db.execute("SELECT relative, reason FROM unselected ORDER BY relative")
    pending = left_out.fetchone()
    for relative, state in states(db, "new"):
        if pending is not None and pending[0] == relative:
            yield relative, replace(state, disposition="skipped", reason=pending[1], images=[])
            pending = left_out.fetchone()
        else:
            yield relative, state


def _manifest_row(state: FileState, image: ImageRecord, given: FileLabel, salt: bytes) -> tuple[object, ...]:
    """One image's manifest row, values in MANIFEST_COLUMNS order."""
    # A CSV's patient column wins, then the DICOM header, then the path's naming convention.
    if given.patient_source == "csv" or (given.patient and not state.patient_id):
        patient, source = pseudonym("P", given.patient, salt), given.patient_source
    else:
        patient, source = state.patient_id, "header" if state.patient_id else ""
    return (
        image.image_id,
        patient or _one_image_patient(state.source_hash, salt),
        source,
        state.study_id or pseudonym("S", f"file:{state.source_hash}", salt),
        state.series_id or pseudonym("R", f"file:{state.source_hash}", salt),
        given.label,
        *(getattr(state.meta, key) for key in META_COLUMNS),
        image.height,
        image.width,
        "" if state.meta.spacing_row is None else state.meta.spacing_row,
        "" if state.meta.spacing_col is None else state.meta.spacing_col,
        image.frame,
        state.source_hash,
        image.pixel_hash,
        given.split,
        "ok",
        image.shard,
        image.offset,
    )


def _one_image_patient(source_hash: str, salt: bytes) -> str:
    """The patient of a file nothing names one for: the file itself (its images split together)."""
    return pseudonym("P", f"file:{source_hash}", salt)


def _check_patient_folders(db: sqlite3.Connection, salt: bytes) -> None:
    """Undo "a folder per patient" where it cannot be one: a class whose images all sit in a single
    folder (`NORMAL/images/*.png`) would be one patient, and a seeded split could not split it."""
    single = db.execute(
        "SELECT 1 FROM manifest WHERE patient_source = ? AND label != '' GROUP BY label"
        " HAVING COUNT(DISTINCT patient_id) < 2 LIMIT 1",
        (FOLDER,),
    ).fetchone()
    if single is None:
        return
    db.create_function("one_image_patient", 1, lambda digest: _one_image_patient(str(digest), salt))
    db.execute(
        "UPDATE manifest SET patient_id = one_image_patient(source_hash), patient_source = ''"
        " WHERE patient_source = ?",
        (FOLDER,),
    )


def _duplicate_instance(db: sqlite3.Connection, state: FileState) -> tuple[str, str, str] | None:
    """Quarantine/skip a file whose SOP Instance UID was already seen in another file."""
    if not state.instance_id:
        return None
    for image in state.images:
        key = f"{state.instance_id}:{image.frame}"
        seen = db.execute("SELECT pixel_hash, image_id FROM instances WHERE key = ?", (key,)).fetchone()
        if seen is None:
            db.execute("INSERT INTO instances VALUES (?, ?, ?)", (key, image.pixel_hash, image.image_id))
        elif seen[1] != image.image_id:
            if seen[0] != image.pixel_hash:
                return (
                    "quarantined",
                    "inconsistent duplicate: SOP Instance UID already seen with different pixels",
                    "DuplicateInstance",
                )
            return (
                "skipped",
                "duplicate: same SOP Instance UID and pixels as another file",
                "DuplicateInstance",
            )
    return None
