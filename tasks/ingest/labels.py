"""Labels, patients and predefined splits for each source file, from a CSV or from folder names.

A CSV row names what it labels by `path` (a file or folder relative to the source; `\\` separators, as a
Windows export writes them, are read as `/`) or, for studies pulled from a PACS (whose file names are
opaque), by `study_uid` (StudyInstanceUID) or `accession` (Accession Number). Those two are
pseudonymised with the salt as soon as they are read, and matched against the pseudonyms ingest keeps
for each image: the raw values stay in the CSV.

Rows that label no image are counted and named by row number (never by value: a path may carry a
patient's name), so a CSV that silently misses half the archive says so. Two rows giving one key
different labels are refused, and so is a class name outside tasks.common.classes.SAFE_CLASS_NAME
(named by its CSV row, or by its folder: a class folder's name is the class name that would be stored).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

import pandas as pd

from tasks.common.classes import VALID_CLASS_NAME, is_safe_class_name
from tasks.common.errors import RadflowError
from tasks.common.paths import printable_path
from tasks.ingest.patients import PatientNames
from tasks.ingest.pseudonym import pseudonym
from tasks.ingest.settings import IngestSettings

FOLDERS = "folders"
KEY_COLUMNS = ("path", "study_uid", "accession")  # what a labels CSV row may be keyed by
PSEUDONYM_PREFIX = {"study_uid": "S", "accession": "A"}  # as ingest pseudonymises those header values
SPLIT_FOLDERS = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


@dataclass(frozen=True)
class FileLabel:
    """What the labels source and the file's path say about one file ("" = not given)."""

    label: str = ""
    patient: str = ""  # raw patient key from the CSV or the path's naming; pseudonymised later
    patient_source: str = ""  # "csv", or the naming convention that found it (tasks.ingest.patients)
    split: str = ""  # train | val | test from the data set's own folders, when configured


class LabelIndex:
    """Looks up a file's label by its relative path or the nearest listed folder above it, else by its
    study or accession pseudonym (labels CSV), or from its folders (`labels: folders`).

    With `labels: folders` the class is the first folder below the top-most split folder
    (`chest_xray/train/NORMAL/...`), else the top-most folder that is not a split folder
    (`brain_mr/series1/img001.dcm`, `PNEUMONIA/patient042/study1/view1.jpg`): any nesting below the
    class folder is fine.
    """

    def __init__(self, settings: IngestSettings, salt: bytes) -> None:
        self.settings = settings
        # relative path, or study/accession pseudonym -> (label, patient)
        self.entries: dict[str, tuple[str, str]] = {}
        self.rows: dict[str, list[int]] = {}  # key -> the CSV data rows that give it
        self.used: set[str] = set()  # keys some looked-up file took its label from
        self.names = PatientNames(settings.patient_pattern)
        self.class_folders: set[str] = set()  # folder names checked as class names
        if settings.labels != FOLDERS:
            self.entries, self.rows = _read_csv(settings, salt)

    def lookup(self, relative: str, study_id: str = "", accession_id: str = "") -> FileLabel:
        """The label, patient key and predefined split for `relative` (a POSIX path under the source),
        whose images carry the study and accession pseudonyms given ("" = none)."""
        # Plain string splitting, not PurePosixPath: this runs once per file on every (re-)run.
        parts = relative.split("/")  # ["train", "NORMAL", "x.png"]
        folders = parts[:-1]
        split_at = next((i for i, part in enumerate(folders) if part.lower() in SPLIT_FOLDERS), None)
        free = next((i for i, part in enumerate(folders) if part.lower() not in SPLIT_FOLDERS), None)
        if self.settings.labels == FOLDERS:
            class_at = split_at + 1 if split_at is not None and split_at + 1 < len(folders) else free
            label, patient = ("" if class_at is None else self._class_folder(folders[class_at])), ""
            patient_folder = len(parts) if class_at is None else class_at + 1
        else:
            label, patient = self._csv_entry(relative, parts, study_id, accession_id)
            patient_folder = len(parts) if free is None else free
        named = self.names.find(relative, patient_folder)
        key, source = (patient, "csv") if patient else (named.key, named.source)
        split = SPLIT_FOLDERS[folders[split_at].lower()] if split_at is not None else ""
        return FileLabel(label, key, source, split if self.settings.predefined_split else "")

    def mark_listed(self, relative: str) -> None:
        """Note a source file that gives no image (quarantined, skipped): a labels CSV row naming it is
        not an unused row. Its folders are no class, so they are not checked as class names."""
        if self.settings.labels != FOLDERS:
            self._csv_entry(relative, relative.split("/"), "", "")

    def _csv_entry(
        self, relative: str, parts: list[str], study_id: str, accession_id: str
    ) -> tuple[str, str]:
        """(label, patient) from the CSV row for the file, its nearest listed folder, or its study or
        accession pseudonym (("", "") when none); that row's key is marked used."""
        parents = ("/".join(parts[:end]) for end in range(len(parts) - 1, 0, -1))
        keys = (relative, *parents, study_id or "-", accession_id or "-", ".")
        found = next((key for key in keys if key in self.entries), None)
        if found is None:
            return "", ""
        self.used.add(found)
        return self.entries[found]

    def _class_folder(self, name: str) -> str:
        """`name`, a class folder's, once it is known to be a valid class name."""
        if name not in self.class_folders:
            if not is_safe_class_name(name):
                raise RadflowError(
                    f"class folder {printable_path(name)!r} in ingest.source: not a valid class name "
                    f"({VALID_CLASS_NAME}); rename the folder"
                )
            self.class_folders.add(name)
        return name

    def unused_rows(self) -> list[int]:
        """The labels CSV's data rows (1-based) that no looked-up file took its label from (the stage
        marks quarantined files too, so this is: rows that name no source file)."""
        return sorted(row for key, rows in self.rows.items() if key not in self.used for row in rows)


def _read_csv(
    settings: IngestSettings, salt: bytes
) -> tuple[dict[str, tuple[str, str]], dict[str, list[int]]]:
    """labels CSV -> ({relative path or study/accession pseudonym: (label, patient)}, {that key: its rows}).

    Columns: label, at least one of path / study_uid / accession (a row uses the first it fills), and
    optionally patient.
    """
    path = settings.source / settings.labels
    if not path.is_file():
        raise RadflowError(
            f"labels file {path} not found; set ingest.labels to a CSV inside ingest.source or to '{FOLDERS}'"
        )
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    keyed = [column for column in KEY_COLUMNS if column in table.columns]
    if "label" not in table.columns or not keyed:
        raise RadflowError(
            f"labels file {path} needs a label column and one of {list(KEY_COLUMNS)}; "
            f"found {list(table.columns)} (columns: path|study_uid|accession,label[,patient])"
        )
    entries: dict[str, tuple[str, str]] = {}
    rows: dict[str, list[int]] = {}
    for row, record in enumerate(table.to_dict("records"), start=1):
        column = next((name for name in keyed if record[name].strip()), None)
        if column is None:
            raise RadflowError(
                f"labels file {path}, data row {row}: no {' / '.join(keyed)} value says what it labels"
            )
        value = record[column].strip()
        key = (
            str(PurePosixPath(value.replace("\\", "/").strip("/")))
            if column == "path"
            else pseudonym(PSEUDONYM_PREFIX[column], value, salt)
        )
        entry = (record["label"].strip(), record.get("patient", "").strip())
        if entry[0] and not is_safe_class_name(entry[0]):
            raise RadflowError(
                f"labels file {path}, data row {row}: its label is not a valid class name "
                f"({VALID_CLASS_NAME})"
            )
        if key in entries and entries[key] != entry:
            raise RadflowError(
                f"labels file {path}, data rows {rows[key][0]} and {row} give the same {column} a different "
                "label or patient; keep one"
            )
        entries[key] = entry
        rows.setdefault(key, []).append(row)
    return entries, rows
