"""Studies for the PACS tests and settings that point radflow at the test Orthanc."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pydicom

from tasks.demo_data.dicom import SOP_CLASSES
from tasks.pacs.settings import PacsSettings, load_pacs_settings
from tests.dicom_factory import identity, ramp, write_dicom
from tests.ingest_helpers import ingest_params
from tests.orthanc import RADFLOW_AET, Orthanc
from tests.tls_proxy import self_signed_certificate

STUDY_ROOT = "1.2.826.0.1.3680043.8.498.9"  # test UIDs: <root>.<study>[.<series>[.<instance>]]
DIGITAL_XRAY = SOP_CLASSES["DX"]  # the SOP class of the studies written here


def study_files(
    folder: Path,
    study: int,
    *,
    series: int = 1,
    per_series: int = 2,
    study_date: str = "",
    accession: str = "",
    patient: str = "",
) -> list[Path]:
    """Write one study's instances (distinct pixels each) as Part 10 files; returns their paths."""
    study_uid = f"{STUDY_ROOT}.{study}"
    files = []
    for s in range(series):
        for i in range(per_series):
            who = identity(
                study_uid=study_uid,
                series_uid=f"{study_uid}.{s + 1}",
                sop_uid=f"{study_uid}.{s + 1}.{i + 1}",
                study_date=study_date or dt.date.today().strftime("%Y%m%d"),
                accession=accession or f"ACCN7{study:06d}",
                patient_id=patient or f"PID8{study:06d}",
            )
            path = folder / f"study{study}" / f"{s}_{i}.dcm"
            files.append(write_dicom(path, ramp(maximum=1000 + 37 * study + 5 * s + i), who=who))
    return files


def study_uid(study: int) -> str:
    return f"{STUDY_ROOT}.{study}"


def pacs_params(root: Path, url: str | None, **pacs: Any) -> dict[str, Any]:
    """The repository's params.yaml with every path under `root`, the archive in `root/raw`, and the
    `pacs` section pointing at `url` (plus overrides)."""
    params = ingest_params(root)
    params["pacs"].update({"url": url, "calling_aet": RADFLOW_AET, "timeout_s": 20, **pacs})
    return params


def pacs_settings(root: Path, url: str | None, **pacs: Any) -> PacsSettings:
    return load_pacs_settings(pacs_params(root, url, **pacs))


def pulled(root: Path) -> list[Path]:
    """The Part 10 files a pull left under `root/raw/pacs` (hidden temporary files excluded)."""
    return sorted(p for p in (root / "raw" / "pacs").rglob("*.dcm") if not p.name.startswith("."))


def sop_uids(files: list[Path]) -> set[str]:
    return {str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID) for path in files}


def all_instances(server: Orthanc) -> int:
    return len(server.get("/instances"))  # type: ignore[arg-type]


def tls_files(folder: Path) -> dict[str, str]:
    """pacs.tls_* settings for a site whose hosts share one self-signed certificate for 127.0.0.1 (its
    own CA): what a peer with another such certificate does not trust."""
    key, certificate = self_signed_certificate(folder)
    return {"tls_cert": str(certificate), "tls_key": str(key), "tls_ca": str(certificate)}
