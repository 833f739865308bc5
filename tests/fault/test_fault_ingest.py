"""Hostile archives: the real ingest stage on ~330 mutated files beside known-good ones.

One `radflow stage ingest` run (a subprocess, so its peak memory can be measured and a hang cannot take
pytest down) over `good/` plus every case from `tests.fault.mutations`; the tests then check what it
owes each file: good files ingested, hostile files ingested sanely or named with a reason, bounded
time and memory. The per-category table is printed (`pytest -s`) for the closing note.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.defaults import repo_params, write_params
from tests.dicom_factory import PLANTED
from tests.fault.harness import Measured, read_csv, run_measured
from tests.fault.mutations import Case, write_good_files, write_hostile_cases
from tests.ingest_helpers import stored_images
from tests.leakscan import planted_identifiers, scan_for_identifiers

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.timeout(900)]

INGEST_TIMEOUT_S = 420  # the whole run; each decode has its own, much shorter bound inside ingest
MAX_RSS_MIB = 1536  # largest single process of the run; the archive holds a 256 MiB gzip bomb
MAX_PIXELS = 4096 * 4096  # no decoded image may be larger than this (the absurd ones claim 65535²)


@dataclass(frozen=True)
class IngestRun:
    """One ingest over the hostile archive, with its outputs read back."""

    source: Path
    project: Path
    ingested: Path
    good: list[Path]
    cases: list[Case]
    measured: Measured
    manifest: pd.DataFrame
    linkage: pd.DataFrame
    quarantine: pd.DataFrame

    def ingested_paths(self) -> set[str]:
        return set(self.linkage["source_path"])

    def reasons(self) -> dict[str, str]:
        return dict(zip(self.quarantine["source_path"], self.quarantine["reason"], strict=True))


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> IngestRun:
    root = tmp_path_factory.mktemp("hostile")
    source = root / "archive"
    source.mkdir()
    good = write_good_files(source, seed=11)
    cases = write_hostile_cases(source, seed=11)
    overrides = (
        f"ingest.source={source}",
        "ingest.labels=folders",
        "ingest.max_failed_fraction=1.0",  # most of this archive is hostile by design
        "ingest.timeout_s=20",
        "ingest.workers=2",
        "ingest.max_file_mb=8",  # so the 16 MiB private-tag file exercises the file-size limit
    )
    project = write_params(root / "project", repo_params(*overrides))
    measured = run_measured(["radflow", "stage", "ingest"], project, timeout=INGEST_TIMEOUT_S)
    assert measured.returncode == 0, measured.output[-5000:]
    private, ingested = project / "private", project / "data/ingested"
    return IngestRun(
        source,
        project,
        ingested,
        good,
        cases,
        measured,
        read_csv(ingested / "manifest.csv"),
        read_csv(private / "linkage.csv"),
        read_csv(private / "quarantine.csv"),
    )


def test_ingest_exits_cleanly_within_memory_bound(hostile_run: IngestRun) -> None:
    assert hostile_run.measured.returncode == 0
    assert hostile_run.measured.max_rss_mib < MAX_RSS_MIB, (
        f"peak RSS {hostile_run.measured.max_rss_mib:.0f} MiB"
    )


def test_no_good_file_is_lost(hostile_run: IngestRun) -> None:
    must_ingest = {str(p) for p in hostile_run.good}
    must_ingest |= {str(c.path) for c in hostile_run.cases if c.expect == "ingested"}
    assert len(must_ingest) >= 20
    assert must_ingest - hostile_run.ingested_paths() == set(), hostile_run.reasons()


def test_every_hostile_file_is_ingested_or_named_with_a_specific_reason(hostile_run: IngestRun) -> None:
    reasons = hostile_run.reasons()
    ingested = hostile_run.ingested_paths()
    unaccounted = [
        c.name
        for c in hostile_run.cases
        if c.expect == "accounted" and str(c.path) not in ingested | set(reasons)
    ]
    assert unaccounted == []
    assert all(len(reason.strip()) >= 8 for reason in reasons.values()), reasons
    assert set(hostile_run.quarantine["disposition"]) <= {"quarantined", "skipped"}
    assert hostile_run.quarantine["exception_type"].str.len().gt(0).any()
    assert len(set(reasons.values())) >= 8  # specific reasons, not one catch-all message


def test_resource_limits_quarantine_before_decoding(hostile_run: IngestRun) -> None:
    reasons = {Path(path).name: reason for path, reason in hostile_run.reasons().items()}
    assert "ingest.max_file_mb" in reasons["private-16mb.dcm"]
    for name in ("gzip-bomb.nii.gz", "dims-65535x65535.dcm", "dims-32767-cube.nii"):
        assert "ingest.max_pixels" in reasons[name], (name, reasons[name])


def test_every_decoded_image_is_sane(hostile_run: IngestRun) -> None:
    assert len(hostile_run.manifest) >= len(hostile_run.good)
    source_of = dict(zip(hostile_run.linkage["image_id"], hostile_run.linkage["source_path"], strict=False))
    images = stored_images(hostile_run.ingested)
    problems = [
        f"{source_of.get(row.image_id, '?')}: {problem}"
        for row in hostile_run.manifest.itertuples()
        for problem in _image_problems(images[row.image_id], row)
    ]
    assert not problems, "\n".join(problems)


def _image_problems(pixels: np.ndarray, row: Any) -> list[str]:
    """What is wrong with one stored image and its manifest row (empty: a sane image)."""
    problems = []
    # Contract: native integers when no rescale applies, else float32.
    if (pixels.dtype.kind not in "iu" and pixels.dtype != np.float32) or pixels.ndim not in (2, 3):
        problems.append(f"dtype {pixels.dtype}, shape {pixels.shape}")
    if pixels.shape[:2] != (int(row.height), int(row.width)):
        problems.append(f"shape {pixels.shape} but manifest says {row.height}x{row.width}")
    if not 0 < pixels.shape[0] * pixels.shape[1] <= MAX_PIXELS:
        problems.append(f"{pixels.shape[0]}x{pixels.shape[1]} pixels")
    if not np.isfinite(pixels).all():
        problems.append("NaN/inf reached the image store")
    for name in ("spacing_row", "spacing_col"):
        value = getattr(row, name)
        if value != "" and not (math.isfinite(float(value)) and float(value) > 0):
            problems.append(f"{name}={value} (must be > 0 and finite, or empty)")
    return problems


def test_no_identifier_or_source_path_leaks_from_a_hostile_archive(hostile_run: IngestRun) -> None:
    identifiers = planted_identifiers(hostile_run.source / "good")  # hostile files may not parse at all
    identifiers |= {value for value in vars(PLANTED).values() if len(value) >= 4}  # what every case carries
    assert len(identifiers) > 10
    odd_names = {
        c.path.name for c in hostile_run.cases if c.category == "odd-name" and len(c.path.name) >= 12
    }
    markers = identifiers | odd_names | {str(hostile_run.source)}
    assert scan_for_identifiers([hostile_run.ingested], markers, [hostile_run.measured.output]) == []


def test_a_rerun_over_the_hostile_archive_changes_nothing(hostile_run: IngestRun) -> None:
    """Quarantined files, odd names and links survive the incremental state: same tables, byte for byte."""
    tables = [
        hostile_run.ingested / "manifest.csv",
        hostile_run.project / "private/linkage.csv",
        hostile_run.project / "private/quarantine.csv",
    ]
    before = [path.read_bytes() for path in tables]
    rerun = run_measured(["radflow", "stage", "ingest"], hostile_run.project, timeout=INGEST_TIMEOUT_S)
    assert rerun.returncode == 0, rerun.output[-5000:]
    assert [path.read_bytes() for path in tables] == before


def test_report_per_category(hostile_run: IngestRun) -> None:
    """Print tried / ingested / quarantined-or-skipped / unaccounted per category (the closing-note table)."""
    ingested, reasons = hostile_run.ingested_paths(), hostile_run.reasons()
    rows = []
    for category, tried in sorted(Counter(c.category for c in hostile_run.cases).items()):
        members = [c for c in hostile_run.cases if c.category == category]
        took = sum(str(c.path) in ingested for c in members)
        named = sum(str(c.path) in reasons for c in members)
        lost = sum(c.expect != "survive" and str(c.path) not in ingested | set(reasons) for c in members)
        rows.append((category, tried, took, named, lost))
    peak = hostile_run.measured.max_rss_mib
    print(f"\n{'category':24} tried ingested named unaccounted   (peak RSS {peak:.0f} MiB)")
    for row in rows:
        print(f"{row[0]:24} {row[1]:5} {row[2]:8} {row[3]:5} {row[4]:11}")
    good_lost = {str(p) for p in hostile_run.good} - ingested
    good = len(hostile_run.good)
    print(f"{'good files':24} {good:5} {good - len(good_lost):8}     0 {len(good_lost):11}")
    assert sum(row[1] for row in rows) == len(hostile_run.cases) >= 300
    assert sum(row[4] for row in rows) == 0 and not good_lost
