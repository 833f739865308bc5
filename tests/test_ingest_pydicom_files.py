"""Every file in pydicom's bundled test-file folder: used, or skipped/quarantined with a specific reason."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pandas as pd
import pydicom
import pytest

from tasks.ingest.stage import run_ingest
from tests.ingest_helpers import settings_for

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
DUPLICATE_REASONS = ("duplicate", "inconsistent duplicate")  # pydicom reuses SOP UIDs across its variants
# One of each kind ingest must read: CT, MR, RGB, palette colour, explicit VR big endian.
MUST_INGEST = (
    "CT_small.dcm",
    "MR_small.dcm",
    "examples_rgb_color.dcm",
    "examples_palette.dcm",
    "ExplVR_BigEnd.dcm",
)


def _pydicom_decodes(path: Path) -> bool:
    """Whether pydicom alone turns the file into pixels (the bar ingest has to meet)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pydicom.dcmread(path).pixel_array.size > 0
    except Exception:
        return False


@pytest.mark.timeout(300)
def test_pydicom_test_files_all_accounted_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADFLOW_SALT", "pydicom-files-salt-for-tests-32-bytes-long")
    shutil.copytree(TEST_FILES, tmp_path / "raw")
    settings = settings_for(tmp_path, labels="folders", slice_strategy="all", max_failed_fraction=1.0)
    summary = run_ingest(settings, tmp_path / "ingested", tmp_path / "private")  # returns: exit 0

    linkage = pd.read_csv(tmp_path / "private/linkage.csv")
    problems = pd.read_csv(tmp_path / "private/quarantine.csv", dtype=str, keep_default_na=False)
    used = set(linkage["source_path"])
    reasons = dict(zip(problems["source_path"], problems["reason"], strict=True))
    raw = tmp_path / "raw"
    files = {p.relative_to(raw).as_posix(): p for p in raw.rglob("*") if p.is_file()}
    assert summary.images > 30
    assert used.isdisjoint(reasons)
    for relative, path in files.items():
        assert relative in used or reasons.get(relative, "").strip(), relative
        if _pydicom_decodes(path) and relative not in used:
            assert reasons[relative].startswith(DUPLICATE_REASONS), (relative, reasons[relative])
    # Files this test must see ingested; one pydicom stops shipping fails here (a vacuous pass otherwise).
    assert not [name for name in MUST_INGEST if name not in files], f"pydicom {pydicom.__version__}"
    assert [name for name in MUST_INGEST if name not in used] == [], reasons
