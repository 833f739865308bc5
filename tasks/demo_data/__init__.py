"""The built-in demo archive: a small, deterministic, hospital-like folder of chest radiographs.

Layout `<dir>/<PatientID>/<StudyDate>/<n>.dcm` (paths carry identifiers, as real archives do), plus
`nifti/case_<k>.nii.gz` volumes, a few broken files, a structured report, and `labels.csv`
(`path,label,patient`; `patient` filled for NIfTI files, which carry no patient id). Everything is
derived from the seed: no wall-clock time, no random UIDs, so the same seed gives byte-identical files.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    generate_uid,
)

from tasks.common.atomic import write_text
from tasks.common.params import parse_section, section
from tasks.demo_data.dicom import Identity, build_dataset, encode
from tasks.demo_data.extras import (
    BROKEN_FILES,
    REPORT_FILE,
    write_broken_files,
    write_bytes,
    write_nifti_volume,
    write_report,
)
from tasks.demo_data.synth import CLASSES, MAX_STORED, chest_image

__all__ = ["BROKEN_FILES", "CLASSES", "REPORT_FILE", "DemoParams", "Identity", "write_demo_archive"]

# Transfer syntaxes cycled over the images: mostly explicit little endian, as in a real archive.
# (No encoder for JPEG lossless / JPEG-LS is installed here; RLE and JPEG 2000 lossless stand in.)
SYNTAX_CYCLE = (
    ExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
    ExplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    JPEG2000Lossless,
)
MONOCHROME1_EVERY = 6  # every 6th image is stored inverted (MONOCHROME1), as some CR readers do
VIEWS = ("PA", "AP", "PA", "LL")
FIRST_NAMES = ("BRUNHILDE", "TORVALD", "ISOLINE", "EZEKIAS", "WILHELMINA", "OSWINDA", "BARNABY", "PERPETUA")
LAST_NAMES = (
    "QUIXWELL",
    "HALVORSEN",
    "OKONKWO",
    "VANTERPOOL",
    "DRUMMOCK",
    "FELSENBACH",
    "MARQUARDT",
    "ZEBRINSKI",
)
INSTITUTIONS = ("WEXBRIDGE VANTMOOR INFIRMARY", "SAINT OSWOLD KERRIGAN CLINIC")
NIFTI_SIZE, NIFTI_SLICES = 64, 6  # small volumes: (64, 64, 6)


@section("demo")
class DemoParams:
    """params.yaml `demo` section."""

    patients: Annotated[int, Field(ge=len(CLASSES))]  # one per class at least
    images_per_patient: Annotated[int, Field(ge=1)]
    image_size: Annotated[int, Field(ge=32)]  # pixels
    nifti_volumes: Annotated[int, Field(ge=0)]


def write_demo_archive(
    directory: Path, params: dict[str, Any], *, patients: int | None = None, seed: int | None = None
) -> None:
    """Write the demo archive into `directory` (defaults for size and seed from `params`)."""
    demo = parse_section(params, "demo", DemoParams)
    seed = int(params["seed"]) if seed is None else seed
    if patients is not None:
        demo = replace(demo, patients=patients)  # --patients is checked like the params.yaml key
    n_patients = demo.patients
    rng = np.random.default_rng(seed)
    labels = list(np.array(CLASSES)[rng.permutation(n_patients) % len(CLASSES)])  # balanced, shuffled
    rows: list[tuple[str, str, str]] = []
    image_index = 0
    identities: list[tuple[Path, Identity]] = []
    for patient in range(n_patients):
        person = _person(seed, patient, rng)
        for image in range(demo.images_per_patient):
            identity = _image_identity(seed, patient, image, person, rng)
            folder = directory / identity.patient_id / identity.study_date
            pixels = chest_image(demo.image_size, labels[patient], rng)
            photometric = "MONOCHROME2"
            if image_index % MONOCHROME1_EVERY == MONOCHROME1_EVERY - 1:
                pixels, photometric = (MAX_STORED - pixels).astype(np.uint16), "MONOCHROME1"
            dataset = build_dataset(
                pixels,
                identity,
                modality="DX" if image_index % 3 else "CR",
                photometric=photometric,
                view=VIEWS[image % len(VIEWS)],
                rescale=(1.0, 0.0),
            )
            write_bytes(
                folder / f"{image + 1}.dcm", encode(dataset, SYNTAX_CYCLE[image_index % len(SYNTAX_CYCLE)])
            )
            rows.append((str((folder / f"{image + 1}.dcm").relative_to(directory)), labels[patient], ""))
            identities.append((folder, identity))
            image_index += 1
    for volume in range(demo.nifti_volumes):
        label = CLASSES[volume % len(CLASSES)]
        path = directory / "nifti" / f"case_{volume + 1:03d}.nii.gz"
        write_nifti_volume(path, label, NIFTI_SIZE, NIFTI_SLICES, rng)
        rows.append((str(path.relative_to(directory)), label, f"NII{seed % 1000:03d}{volume:04d}"))
    if identities:
        folder, identity = identities[len(identities) // 2]
        broken = write_broken_files(folder, identity, demo.image_size, rng)
        rows += [(str(path.relative_to(directory)), "normal", "") for path in broken]
        write_report(identities[0][0], identities[0][1])
    os.sync()  # every image is on disk before labels.csv (written durably) names it
    _write_labels(directory / "labels.csv", rows)


def _person(seed: int, patient: int, rng: np.random.Generator) -> dict[str, str]:
    """Fake but realistic patient-level identifiers."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    birth = np.datetime64("1935-01-01") + np.timedelta64(int(rng.integers(0, 65 * 365)), "D")
    return {
        "name": f"{last}^{first}",
        "id": f"MRN{seed % 100:02d}{patient:05d}",
        "birth": str(birth).replace("-", ""),
        "sex": str(rng.choice(["F", "M"])),
        "institution": str(rng.choice(INSTITUTIONS)),
        "referring": f"{rng.choice(LAST_NAMES)}^{rng.choice(FIRST_NAMES)}",
        "first_study": str(np.datetime64("2019-01-01") + np.timedelta64(int(rng.integers(0, 4 * 365)), "D")),
    }


def _image_identity(
    seed: int, patient: int, image: int, person: dict[str, str], rng: np.random.Generator
) -> Identity:
    """Identifiers of one image; two images per study, each study a later visit."""
    study = image // 2
    study_date = np.datetime64(person["first_study"]) + np.timedelta64(
        study * int(rng.integers(30, 200)), "D"
    )
    key = [str(seed), str(patient), str(study)]
    return Identity(
        patient_name=person["name"],
        patient_id=person["id"],
        birth_date=person["birth"],
        sex=person["sex"],
        accession=f"ACC{seed % 100:02d}{patient:05d}{study:02d}",
        institution=person["institution"],
        referring_physician=person["referring"],
        study_date=str(study_date).replace("-", ""),
        study_uid=generate_uid(entropy_srcs=[*key, "study"]),
        series_uid=generate_uid(entropy_srcs=[*key, str(image), "series"]),
        sop_uid=generate_uid(entropy_srcs=[*key, str(image), "sop"]),
        private_text=f"Pt {person['name'].replace('^', ' ')} MRN {person['id']} DOB {person['birth']}",
    )


def _write_labels(path: Path, rows: list[tuple[str, str, str]]) -> None:
    """labels.csv, sorted by path so the file is stable."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "label", "patient"])
    writer.writerows(sorted(rows))
    write_text(path, buffer.getvalue())
