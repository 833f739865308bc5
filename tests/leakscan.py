"""Find identifying values planted in raw inputs anywhere in radflow's outputs.

The identifiers are read back from the raw DICOM headers (not from the generator's internals), so the
scan checks what a real archive would expose: names (whole and by component), IDs, birth dates,
accession numbers, institutions, physicians, UIDs, and the folder names that carry patient IDs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

IDENTIFYING_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "AccessionNumber",
    "InstitutionName",
    "ReferringPhysicianName",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
)
PERSON_NAME_KEYWORDS = ("PatientName", "ReferringPhysicianName")  # searched whole and by name component
MIN_TOKEN_LENGTH = 4  # shorter fragments (initials, "M") would match innocently everywhere


def planted_identifiers(raw_root: Path) -> set[str]:
    """Every identifying header value found in the raw DICOM files, and each component of person names
    (a report could show a surname alone; an institution's ordinary words such as "CLINIC" are no leak)."""
    values: set[str] = set()
    for path in raw_root.rglob("*"):
        if not path.is_file():
            continue
        try:
            dataset = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError):
            continue
        for keyword in IDENTIFYING_KEYWORDS:
            value = str(dataset.get(keyword, "") or "").strip()
            values.add(value)
            if keyword in PERSON_NAME_KEYWORDS:
                values.update(value.replace("^", " ").split())
    return {value for value in values if len(value) >= MIN_TOKEN_LENGTH}


def scan_for_identifiers(
    roots: Iterable[Path], identifiers: set[str], texts: Iterable[str] = ()
) -> list[str]:
    """Return `where: identifier` for each identifier found in a file under `roots` or in `texts`.

    Case-insensitive by lowering both sides once and using bytes.find: a regex per identifier over
    hundreds of MB of weights and checkpoints took tens of minutes."""
    needles = [(value, value.encode().lower()) for value in identifiers]
    hits: list[str] = []
    for root in roots:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in files:
            content = path.read_bytes().lower()
            hits.extend(f"{path}: {value}" for value, needle in needles if _contains(content, needle))
    for index, text in enumerate(texts):
        encoded = text.encode().lower()
        hits.extend(f"text #{index}: {value}" for value, needle in needles if _contains(encoded, needle))
    return hits


def _contains(content: bytes, needle: bytes) -> bool:
    """Numeric values (dates, numeric IDs, UIDs) must not touch other digits, so a birth date is not
    'found' inside the digits of some float in a metrics file."""
    numeric = re.fullmatch(rb"[0-9.]+", needle) is not None
    start = content.find(needle)
    while start != -1:
        end = start + len(needle)
        if not numeric or not (content[start - 1 : start].isdigit() or content[end : end + 1].isdigit()):
            return True
        start = content.find(needle, start + 1)
    return False
