"""Plant identifying values of every kind into an archive, in every place an archive can hold them.

Beyond the headers `tests.leakscan.planted_identifiers` reads back (names, IDs, birth date, accession,
institution, physician, UIDs), this plants free-text tags (descriptions, comments, history), more
person names (operator, performing physician), addresses and phone numbers, other patient IDs, private
tags, NIfTI `descrip`/`aux_file`/`intent_name`, PNG text chunks, the CSV's patient column, and folder
and file names that carry names and IDs, as hospital exports do. Pixels come from the archive's own
images (slightly perturbed, so no image is a pixel-identical duplicate) and labels from its labels.csv.
"""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from pydicom.uid import UID

# Distinctive values: finding any of them in an output means it leaked.
HEADER_VALUES = {
    "PatientName": "WINTERBOTHAM^PERPETUA",
    "PatientID": "ZQX90817263",
    "PatientBirthDate": "19370822",
    "AccessionNumber": "ACC77881234",
    "InstitutionName": "SAINT ELSEWHERE GRANGE INFIRMARY",
    "InstitutionAddress": "42 WALLABY WAY SYDNEY",
    "InstitutionalDepartmentName": "PULMONARY ANNEX KESTREL",
    "ReferringPhysicianName": "QUILLFEATHER^AMBROSE",
    "PerformingPhysicianName": "BRAMBLECOTE^ISIDORE",
    "OperatorsName": "SNODGRASS^HILDEGARD",
    "OtherPatientIDs": "ALTID5550192",
    "PatientAddress": "7 NETTLEBED LANE",
    "PatientTelephoneNumbers": "5558675309",
    "StudyDescription": "FOLLOWUP ZORBLAXIA CASE",
    "SeriesDescription": "SERIES TOPAZFINCH",
    "ImageComments": "patient reports QUOKKAPOX rash",
    "AdditionalPatientHistory": "history of MARMOSETOSIS",
    "RequestedProcedureDescription": "PROCEDURE GLIMMERWICK",
    "StudyID": "STUDYID4417",
    "StudyInstanceUID": "1.2.826.0.1.3680043.8.498.7770011",
    "SeriesInstanceUID": "1.2.826.0.1.3680043.8.498.7770012",
}
PRIVATE_VALUE = "PRIVATETOKEN MARMALADE"
PATIENT_FOLDER = "ZQX90817263_WINTERBOTHAM"
NIFTI = {"descrip": "NIFTIDESC GRIMBLEWICK", "aux_file": "AUXTWEEDLE", "intent_name": "INTWOBBLE"}
NIFTI_NAME = "PATIENT_FIZZLEWICK_NIFTIPAT8812345.nii.gz"
NIFTI_PATIENT = "NIFTIPAT8812345"
PNG_FOLDER, PNG_NAME, PNG_TEXT = "PNGPATIENT_HOOPERSWORTH", "SCAN_OF_PUDDLEGLUM.png", "PNGTEXT MARZIPAN"
PNG_PATIENT = "PNGPAT3141592"
# Ordinary words among the planted values' words (and the demo's institution names): too common to
# count as a leak on their own ("CLINIC" is in "clinical use" of every model card); whole values stay.
COMMON_WORDS = {
    "FOLLOWUP", "PULMONARY", "PROCEDURE", "INFIRMARY", "ELSEWHERE", "PATIENT", "HISTORY", "CLINIC",
    "SAINT", "GRANGE", "HOSPITAL", "MEDICAL", "CENTER", "CENTRE",
}  # fmt: skip


def planted_values() -> set[str]:
    """Every planted string, whole and by distinctive word (person-name components included)."""
    whole = {*HEADER_VALUES.values(), PRIVATE_VALUE, PATIENT_FOLDER, *NIFTI.values(), NIFTI_NAME}
    whole |= {NIFTI_PATIENT, PNG_FOLDER, PNG_NAME, PNG_TEXT, PNG_PATIENT, "PUDDLEGLUM", "FIZZLEWICK"}
    words = {word for value in whole for word in value.replace("^", " ").replace("_", " ").split()}
    distinctive = {word for word in words if len(word) >= 8}
    return without_common_words(whole | distinctive)


def without_common_words(values: set[str]) -> set[str]:
    """`values` minus the single ordinary words in COMMON_WORDS."""
    return {value for value in values if value.upper() not in COMMON_WORDS}


def plant(source: Path, seed: int = 0, dicoms: int = 4) -> None:
    """Add planted DICOM, NIfTI and PNG files to `source` and list them in its labels.csv."""
    rng = np.random.default_rng(seed)
    with open(source / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    donors = [row for row in rows if row["path"].endswith(".dcm") and "report" not in row["path"]]
    added: list[dict[str, str]] = []
    for index, donor in enumerate(donors[:dicoms]):
        relative = f"{PATIENT_FOLDER}/ACC77881234/{index}_WINTERBOTHAM.dcm"
        _planted_dicom(source / donor["path"], source / relative, rng, index)
        added.append({"path": relative, "label": donor["label"], "patient": ""})
    label = donors[0]["label"]
    volume = rng.normal(100, 20, size=(32, 32, 3)).astype(np.float32)  # (X, Y, Z)
    image = nib.Nifti1Image(volume, np.eye(4))
    for field, value in NIFTI.items():
        image.header[field] = value.encode()
    nib.save(image, source / NIFTI_NAME)
    added.append({"path": NIFTI_NAME, "label": label, "patient": NIFTI_PATIENT})
    info = PngInfo()
    info.add_text("Patient", PNG_TEXT)
    (source / PNG_FOLDER).mkdir()
    pixels = rng.integers(0, 255, size=(48, 48)).astype(np.uint8)  # (H, W)
    Image.fromarray(pixels).save(source / PNG_FOLDER / PNG_NAME, pnginfo=info)
    added.append({"path": f"{PNG_FOLDER}/{PNG_NAME}", "label": label, "patient": PNG_PATIENT})
    with open(source / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "patient"])
        writer.writeheader()
        writer.writerows([*rows, *added])


def _planted_dicom(donor: Path, target: Path, rng: np.random.Generator, index: int) -> None:
    """The donor image with every planted header value, a private tag and perturbed pixels."""
    ds = pydicom.dcmread(donor)
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        ds.decompress()  # native pixels, so the perturbed ones can be written back as they are
    for keyword, value in HEADER_VALUES.items():
        setattr(ds, keyword, value)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = UID(
        f"1.2.826.0.1.3680043.8.498.777002{index}"
    )
    ds.private_block(0x0013, "FAULT SUITE", create=True).add_new(0x01, "LO", PRIVATE_VALUE)
    pixels = ds.pixel_array  # (H, W) or (F, H, W) integers
    noisy = pixels.astype(np.int64) + rng.integers(0, 2, size=pixels.shape)
    ds.PixelData = np.clip(noisy, 0, 2 ** int(ds.BitsStored) - 1).astype(pixels.dtype).tobytes()
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target, enforce_file_format=True)
