"""From per-file states to the stage's tables: manifest, linkage and quarantine (pure, no I/O).

Labels and CSV/path-naming patient keys are applied here, not at decode time, so editing labels.csv
never forces a re-decode. Each row records where its patient came from (`patient_source`: csv, header,
a naming convention, or empty when nothing named one and the file is its own patient).

Guards: one manifest row per image id (identical files share it), a SOP Instance UID seen with
different pixels is quarantined, and the same SOP with the same pixels is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tasks.ingest.labels import LabelIndex
from tasks.ingest.patients import FOLDER
from tasks.ingest.pseudonym import pseudonym
from tasks.ingest.records import FileState

MANIFEST_COLUMNS = (
    "image_id", "patient_id", "patient_source", "study_id", "series_id", "label", "modality", "view",
    "body_part", "photometric", "sex", "age_band", "manufacturer", "height", "width", "spacing_row",
    "spacing_col", "frame", "source_hash", "pixel_hash", "predefined_split", "decode_status", "shard",
    "shard_offset",
)  # fmt: skip
META_COLUMNS = ("modality", "view", "body_part", "photometric", "sex", "age_band", "manufacturer")
LINKAGE_COLUMNS = ("source_path", "frame", "image_id", "source_hash")
QUARANTINE_COLUMNS = ("source_path", "disposition", "reason", "exception_type", "detail")


@dataclass
class Tables:
    """The three output tables, as lists of row dicts."""

    manifest: list[dict[str, object]] = field(default_factory=list)
    linkage: list[dict[str, object]] = field(default_factory=list)
    quarantine: list[dict[str, object]] = field(default_factory=list)


def assemble(files: dict[str, FileState], labels: LabelIndex, salt: bytes) -> Tables:
    """Build the tables from every current source file (keys: POSIX paths relative to the source)."""
    tables = Tables()
    rows: dict[str, dict[str, object]] = {}
    instances: dict[str, tuple[str, str]] = {}  # instance pseudonym -> (pixel hash, image id) first seen
    for relative in sorted(files):
        state = files[relative]
        if state.disposition != "ok":
            tables.quarantine.append(
                _problem(relative, state.disposition, state.reason, state.exception_type, state.detail)
            )
            continue
        duplicate = _duplicate_instance(state, instances)
        if duplicate:
            tables.quarantine.append(_problem(relative, *duplicate))
            continue
        given = labels.lookup(relative, state.study_id, state.accession_id)
        for image in state.images:
            tables.linkage.append(
                {
                    "source_path": relative,
                    "frame": image.frame,
                    "image_id": image.image_id,
                    "source_hash": state.source_hash,
                }
            )
            if image.image_id in rows:  # the same content at another path: one image, one row
                continue
            # A CSV's patient column wins, then the DICOM header, then the path's naming convention.
            if given.patient_source == "csv" or (given.patient and not state.patient_id):
                patient, source = pseudonym("P", given.patient, salt), given.patient_source
            else:
                patient, source = state.patient_id, "header" if state.patient_id else ""
            rows[image.image_id] = {
                "image_id": image.image_id,
                "patient_id": patient or _one_image_patient(state.source_hash, salt),
                "patient_source": source,
                "study_id": state.study_id or pseudonym("S", f"file:{state.source_hash}", salt),
                "series_id": state.series_id or pseudonym("R", f"file:{state.source_hash}", salt),
                "label": given.label,
                **{key: getattr(state.meta, key) for key in META_COLUMNS},
                "height": image.height,
                "width": image.width,
                "spacing_row": "" if state.meta.spacing_row is None else state.meta.spacing_row,
                "spacing_col": "" if state.meta.spacing_col is None else state.meta.spacing_col,
                "frame": image.frame,
                "source_hash": state.source_hash,
                "pixel_hash": image.pixel_hash,
                "predefined_split": given.split,
                "decode_status": "ok",
                "shard": image.shard,
                "shard_offset": image.offset,
            }
    tables.manifest = [rows[key] for key in sorted(rows)]
    _check_patient_folders(tables.manifest, salt)
    return tables


def _one_image_patient(source_hash: str, salt: bytes) -> str:
    """The patient of a file nothing names one for: the file itself (its images split together)."""
    return pseudonym("P", f"file:{source_hash}", salt)


def _check_patient_folders(manifest: list[dict[str, object]], salt: bytes) -> None:
    """Undo "a folder per patient" where it cannot be one: a class whose images all sit in a single
    folder (`NORMAL/images/*.png`) would be one patient, and a seeded split could not split it."""
    folders: dict[object, set[object]] = {}
    for row in manifest:
        if row["patient_source"] == FOLDER and row["label"]:
            folders.setdefault(row["label"], set()).add(row["patient_id"])
    if all(len(patients) > 1 for patients in folders.values()):
        return
    for row in manifest:
        if row["patient_source"] == FOLDER:
            row["patient_id"] = _one_image_patient(str(row["source_hash"]), salt)
            row["patient_source"] = ""


def _duplicate_instance(
    state: FileState, instances: dict[str, tuple[str, str]]
) -> tuple[str, str, str] | None:
    """Quarantine/skip a file whose SOP Instance UID was already seen in another file."""
    if not state.instance_id:
        return None
    for image in state.images:
        key = f"{state.instance_id}:{image.frame}"
        seen = instances.get(key)
        if seen is None:
            instances[key] = (image.pixel_hash, image.image_id)
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


def _problem(
    relative: str, disposition: str, reason: str, exception_type: str, detail: str = ""
) -> dict[str, object]:
    return {
        "source_path": relative,
        "disposition": disposition,
        "reason": reason,
        "exception_type": exception_type,
        "detail": detail,
    }
