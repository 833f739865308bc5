"""Labels, patients and predefined splits for each source file, from a CSV or from folder names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

import pandas as pd

from tasks.common.errors import RadflowError
from tasks.ingest.patients import PatientNames
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
    """What the labels source and the file's path say about one file ("" = not given)."""

    label: str = ""
    patient: str = ""  # raw patient key from the CSV or the path's naming; pseudonymised later
    patient_source: str = ""  # "csv", or the naming convention that found it (tasks.ingest.patients)
    split: str = ""  # train | val | test from the data set's own folders, when configured


class LabelIndex:
    """Looks up a file's label by its relative path, or by the nearest listed folder above it.

    With `labels: folders` the class is the first folder below the top-most split folder
    (`chest_xray/train/NORMAL/...`), else the top-most folder that is not a split folder
    (`brain_mr/series1/img001.dcm`, `PNEUMONIA/patient042/study1/view1.jpg`): any nesting below the
    class folder is fine.
    """

    def __init__(self, settings: IngestSettings) -> None:
        self.settings = settings
        self.entries: dict[str, tuple[str, str]] = {}
        self.names = PatientNames(settings.patient_pattern)
        if settings.labels != FOLDERS:
            self.entries = _read_csv(settings)

    def lookup(self, relative: str) -> FileLabel:
        """The label, patient key and predefined split for `relative` (a POSIX path under the source)."""
        # Plain string splitting, not PurePosixPath: this runs once per file on every (re-)run.
        parts = relative.split("/")  # ["train", "NORMAL", "x.png"]
        folders = parts[:-1]
        split_at = next((i for i, part in enumerate(folders) if part.lower() in SPLIT_FOLDERS), None)
        free = next((i for i, part in enumerate(folders) if part.lower() not in SPLIT_FOLDERS), None)
        if self.settings.labels == FOLDERS:
            class_at = split_at + 1 if split_at is not None and split_at + 1 < len(folders) else free
            label, patient = ("" if class_at is None else folders[class_at]), ""
            patient_folder = len(parts) if class_at is None else class_at + 1
        else:
            parents = ("/".join(parts[:end]) for end in range(len(parts) - 1, 0, -1))
            label, patient = next(
                (self.entries[key] for key in (relative, *parents, ".") if key in self.entries),
                ("", ""),
            )
            patient_folder = len(parts) if free is None else free
        named = self.names.find(relative, patient_folder)
        key, source = (patient, "csv") if patient else (named.key, named.source)
        split = SPLIT_FOLDERS[folders[split_at].lower()] if split_at is not None else ""
        return FileLabel(label, key, source, split if self.settings.predefined_split else "")


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
