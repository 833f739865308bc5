"""What the data set looks like to radflow: classes, patients and splits, so a wrong reading shows at once.

Computed in SQL from the manifest (the stage's scratch table) and printed under the ingest summary.
It says loudly when images have no patient id (each is then its own patient: splits are per image and
metrics may be optimistic) and when the data set's own split folders put one patient in two splits.
Class names and counts only: no path, no identifier.
"""

from __future__ import annotations

import sqlite3
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


def overview(db: sqlite3.Connection, labels_from: str) -> Overview:
    """Count classes, patient sources and the data set's own splits over the labelled rows of the
    scratch table `manifest` (`tasks.ingest.assemble`), in SQL: memory holds the counts only."""
    labelled = "FROM manifest WHERE label != ''"

    def counts(column: str, where: str = "") -> dict[str, int]:  # in the manifest's (image id) order
        query = f"SELECT {column}, COUNT(*) {labelled} {where} GROUP BY {column} ORDER BY MIN(image_id)"
        return {str(value): count for value, count in db.execute(query)}

    named = f"SELECT DISTINCT patient_source, patient_id {labelled} AND patient_source != ''"
    by_source = f"SELECT patient_source, COUNT(*) FROM ({named}) GROUP BY patient_source ORDER BY 1"
    crossing = (
        f"SELECT COUNT(*) FROM (SELECT patient_id {labelled} AND predefined_split != ''"
        " GROUP BY patient_id HAVING COUNT(DISTINCT predefined_split) > 1)"
    )
    return Overview(
        labels_from=labels_from,
        classes=counts("label"),
        images_by_source=counts("patient_source"),
        patients_by_source={str(source): count for source, count in db.execute(by_source)},
        splits=counts("predefined_split", "AND predefined_split != ''"),
        crossing=db.execute(crossing).fetchone()[0],
    )
