"""Labels, patients and predefined splits for each source file, from a CSV or from folder names.

A CSV row names what it labels by `path` (a file or folder relative to the source) or, for studies
pulled from a PACS (whose file names are opaque), by `study_uid` (StudyInstanceUID) or `accession`
(Accession Number). Those two are pseudonymised with the salt as soon as they are read, and matched
against the pseudonyms ingest keeps for each image: the raw values stay in the CSV.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

import pandas as pd

from tasks.common.errors import RadflowError
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
    """What the labels source says about one file ("" = not given)."""

    label: str = ""
    patient: str = ""  # raw patient key from the CSV or the file-name pattern; pseudonymised later
    split: str = ""  # train | val | test from the data set's own folders, when configured


class LabelIndex:
    """Looks up a file's label by its relative path or the nearest listed folder above it, else by its
    study or accession pseudonym."""

    def __init__(self, settings: IngestSettings, salt: bytes) -> None:
        self.settings = settings
        self.entries: dict[
            str, tuple[str, str]
        ] = {}  # path, or study/accession pseudonym -> (label, patient)
        self.pattern = _compile(settings.patient_pattern)
        if settings.labels != FOLDERS:
            self.entries = _read_csv(settings, salt)

    def lookup(self, relative: str, study_id: str = "", accession_id: str = "") -> FileLabel:
        """The label, patient key and predefined split for `relative` (a POSIX path under the source),
        whose images carry the study and accession pseudonyms given ("" = none)."""
        # Plain string splitting, not PurePosixPath: this runs once per file on every (re-)run.
        parts = relative.split("/")  # ["train", "NORMAL", "x.png"]
        if self.settings.labels == FOLDERS:
            label, patient = (parts[-2] if len(parts) > 1 else ""), ""
        else:
            parents = ("/".join(parts[:end]) for end in range(len(parts) - 1, 0, -1))
            keys = (relative, *parents, study_id or "-", accession_id or "-", ".")
            label, patient = next((self.entries[key] for key in keys if key in self.entries), ("", ""))
        if not patient and self.pattern is not None:
            match = self.pattern.search(parts[-1])
            patient = (match.groupdict().get("patient") or match.group(0)) if match else ""
        split = next(
            (SPLIT_FOLDERS[part.lower()] for part in parts[:-1] if part.lower() in SPLIT_FOLDERS), ""
        )
        return FileLabel(label, patient, split if self.settings.predefined_split else "")


def _compile(pattern: str | None) -> re.Pattern[str] | None:
    """The file-name pattern that yields a patient key (named group `patient`, else the whole match)."""
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as error:
        raise RadflowError(
            f"ingest.patient_pattern {pattern!r} is not a valid regular expression: {error}"
        ) from None


def _read_csv(settings: IngestSettings, salt: bytes) -> dict[str, tuple[str, str]]:
    """labels CSV -> {relative path or study/accession pseudonym: (label, patient)}.

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
    for row, record in enumerate(table.to_dict("records"), start=1):
        column = next((name for name in keyed if record[name].strip()), None)
        if column is None:
            raise RadflowError(
                f"labels file {path}, data row {row}: no {' / '.join(keyed)} value says what it labels"
            )
        value = record[column].strip()
        key = (
            str(PurePosixPath(value.strip("/")))
            if column == "path"
            else pseudonym(PSEUDONYM_PREFIX[column], value, salt)
        )
        entries[key] = (record["label"].strip(), record.get("patient", "").strip())
    return entries
