"""Labels, patients and predefined splits for each source file, from a CSV or from folder names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

import pandas as pd

from tasks.common.errors import RadflowError
from tasks.ingest.settings import IngestSettings

FOLDERS = "folders"
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
    """Looks up a file's label by its relative path, or by the nearest listed folder above it."""

    def __init__(self, settings: IngestSettings) -> None:
        self.settings = settings
        self.entries: dict[str, tuple[str, str]] = {}
        self.pattern = _compile(settings.patient_pattern)
        if settings.labels != FOLDERS:
            self.entries = _read_csv(settings)

    def lookup(self, relative: str) -> FileLabel:
        """The label, patient key and predefined split for `relative` (a POSIX path under the source)."""
        # Plain string splitting, not PurePosixPath: this runs once per file on every (re-)run.
        parts = relative.split("/")  # ["train", "NORMAL", "x.png"]
        if self.settings.labels == FOLDERS:
            label, patient = (parts[-2] if len(parts) > 1 else ""), ""
        else:
            parents = ("/".join(parts[:end]) for end in range(len(parts) - 1, 0, -1))
            label, patient = next(
                (self.entries[key] for key in (relative, *parents, ".") if key in self.entries),
                ("", ""),
            )
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


def _read_csv(settings: IngestSettings) -> dict[str, tuple[str, str]]:
    """labels CSV -> {relative path: (label, patient)}; columns path,label[,patient]."""
    path = settings.source / settings.labels
    if not path.is_file():
        raise RadflowError(
            f"labels file {path} not found; set ingest.labels to a CSV inside ingest.source or to '{FOLDERS}'"
        )
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"path", "label"} - set(table.columns)
    if missing:
        raise RadflowError(
            f"labels file {path} lacks column(s) {sorted(missing)}; found {list(table.columns)}, "
            "need path,label[,patient]"
        )
    patients = table["patient"] if "patient" in table.columns else pd.Series([""] * len(table))
    return {
        str(PurePosixPath(key.strip().strip("/"))): (label.strip(), patient.strip())
        for key, label, patient in zip(table["path"], table["label"], patients, strict=True)
    }
