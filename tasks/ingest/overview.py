"""What the data set looks like to radflow: classes, patients and splits, so a wrong reading shows at once.

Computed from the manifest rows and printed under the ingest summary. It says loudly when images have
no patient id (each is then its own patient: splits are per image and metrics may be optimistic) and
when the data set's own split folders put one patient in two splits. Class names and counts only: no
path, no identifier.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tasks.ingest.patients import TITLES

MAX_CLASSES_SHOWN = 12  # a long list means the class folder was read wrongly: the count says so


@dataclass
class Overview:
    """Counts over the labelled images of the manifest."""

    labels_from: str = ""  # "folders" or the labels CSV's name
    classes: dict[str, int] = field(default_factory=dict)  # class -> images
    images_by_source: dict[str, int] = field(default_factory=dict)  # patient_source -> images ("" = none)
    patients_by_source: dict[str, int] = field(default_factory=dict)  # patient_source -> patients
    splits: dict[str, int] = field(default_factory=dict)  # the data set's own split -> images
    crossing: int = 0  # patients with images in more than one of the data set's split folders

    def warnings(self) -> list[str]:
        """The loud lines: what makes the metrics less trustworthy, and what to do about it."""
        lines = []
        without = self.images_by_source.get("", 0)
        if without:
            lines.append(
                f"{without} of {sum(self.classes.values())} labelled images have no patient id (no DICOM "
                "PatientID, no patient column in the labels CSV, no recognised file or folder naming): each "
                "counts as its own patient, so splits are per image there and the test metrics may be "
                "optimistic. Set ingest.patient_pattern to a regex with a group named 'patient', or add a "
                "patient column to the labels CSV."
            )
        if self.crossing:
            lines.append(
                f"{self.crossing} patient(s) have images in more than one of the data set's own split "
                "folders. preprocess keeps each such patient in one split (the most held-out: test, then "
                "val), so no patient is in two splits; to let radflow split by patient instead, set "
                "ingest.predefined_split: false."
            )
        return lines

    def rows(self) -> list[tuple[str, str]]:
        """(title, value) rows for the summary table."""
        shown = sorted(self.classes.items())[:MAX_CLASSES_SHOWN]
        more = len(self.classes) - len(shown)
        classes = ", ".join(f"{name} {count}" for name, count in shown) + (f", ... +{more}" if more else "")
        patients = [
            f"{self.patients_by_source[source]} from {TITLES.get(source, source)} "
            f"({self.images_by_source[source]} images)"
            for source in sorted(self.patients_by_source)
        ]
        without = self.images_by_source.get("", 0)
        patients += [f"none for {without} images (each its own patient)"] if without else []
        splits = [f"{name} {self.splits[name]}" for name in ("train", "val", "test") if name in self.splits]
        return [
            (f"classes ({len(self.classes)}, from {self.labels_from})", classes or "none"),
            ("patients", "; ".join(patients) or "none"),
            ("splits", "the data set's own folders: " + ", ".join(splits) if splits else "made by patient"),
        ]


def overview(manifest: list[dict[str, object]], labels_from: str) -> Overview:
    """Count classes, patient sources and the data set's own splits over the labelled rows."""
    labelled = [row for row in manifest if row["label"]]
    splits_of: dict[object, set[object]] = {}
    for row in labelled:
        if row["predefined_split"]:
            splits_of.setdefault(row["patient_id"], set()).add(row["predefined_split"])
    named = {(str(row["patient_source"]), row["patient_id"]) for row in labelled if row["patient_source"]}
    return Overview(
        labels_from=labels_from,
        classes=dict(Counter(str(row["label"]) for row in labelled)),
        images_by_source=dict(Counter(str(row["patient_source"]) for row in labelled)),
        patients_by_source=dict(Counter(source for source, _ in named)),
        splits=dict(Counter(str(row["predefined_split"]) for row in labelled if row["predefined_split"])),
        crossing=sum(1 for splits in splits_of.values() if len(splits) > 1),
    )
