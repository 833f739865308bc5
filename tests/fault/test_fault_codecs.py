"""Damaged compressed pixel data, for every format ingest decodes: one real `radflow stage ingest` run
over ~480 cases (`tests.fault.codec_cases`, `tests.fault.image_cases`) beside known-good files of each
format.

What ingest owes them: the run exits 0 within its bound (no crash, no hang), every good file is
ingested, every damaged file is ingested sanely or quarantined with a specific reason, and no decoder
output (Rust panics, C library messages, Python tracebacks) reaches the stage's output. The table of
counts per category, with the worker deaths survived, is printed (`pytest -s`) for the closing note.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.defaults import repo_params, write_params
from tests.dicom_factory import write_nifti, write_plain
from tests.fault.codec_cases import TEMPLATES, codec_cases, numbered_sop_uids, saved, template
from tests.fault.harness import Measured, read_csv, run_measured
from tests.fault.image_cases import image_cases
from tests.fault.mutations import write_good_files
from tests.leakscan import planted_identifiers, scan_for_identifiers

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.timeout(1500)]

INGEST_TIMEOUT_S = 900  # the whole run: more is a hang (each file has ingest.timeout_s inside)
NOISE = ("panicked at", "RUST_BACKTRACE", "stack backtrace", "Traceback", "Fatal Python error", "libjpeg")
DEATHS = (
    "TimeoutError",
    "MemoryError",
    "SIGSEGV",
    "SIGBUS",
    "SIGABRT",
    "SIGKILL",
    "SIGILL",
    "SIGFPE",
    "WorkerExit",
)


@dataclass(frozen=True)
class CodecRun:
    """One ingest over the damaged archive, with its outputs read back."""

    source: Path
    ingested: Path
    good: set[str]  # paths relative to the archive
    cases: dict[str, list[str]]  # category -> paths
    measured: Measured
    linkage: pd.DataFrame
    quarantine: pd.DataFrame


def _write_good(source: Path) -> set[str]:
    """Undamaged files of every format the cases damage: what must come through."""
    paths = {str(path) for path in write_good_files(source, seed=23)}
    sops = numbered_sop_uids(9)
    for codec in TEMPLATES:
        path = source / "good" / f"{codec}.dcm"
        path.write_bytes(saved(template(codec, next(sops))))
        paths.add(str(path.relative_to(source)))
    rng = np.random.default_rng(23)
    for name, pixels in (
        ("gray.png", rng.integers(0, 65536, (40, 40), dtype=np.uint16)),
        ("rgb.jpg", rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)),
        ("gray.tif", rng.integers(0, 256, (40, 40), dtype=np.uint8)),
    ):
        write_plain(source / "good" / name, pixels)
        paths.add(f"good/{name}")
    write_nifti(source / "good" / "volume.nii.gz", rng.normal(size=(16, 16, 3)).astype(np.float32))
    return paths | {"good/volume.nii.gz"}


@pytest.fixture(scope="module")
def codec_run(tmp_path_factory: pytest.TempPathFactory) -> CodecRun:
    root = tmp_path_factory.mktemp("codecs")
    source = root / "archive"
    good = _write_good(source)
    cases: dict[str, list[str]] = {}
    for category, items in itertools.chain(codec_cases(seed=5).items(), image_cases(seed=5).items()):
        for name, data in items:
            path = source / "damaged" / category / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            cases.setdefault(category, []).append(str(path.relative_to(source)))
    overrides = (
        f"ingest.source={source}",
        "ingest.labels=folders",
        "ingest.max_failed_fraction=1.0",  # most of this archive is damaged by design
        # A few cases send libjpeg into an endless loop (10 s each, twice); good files decode in <= 60 ms
        # even at load average 18 on 2 cores, so 10 s leaves a descheduled worker room (5 s was tight).
        "ingest.timeout_s=10",
        "ingest.workers=2",
        "ingest.worker_memory_mb=1024",
    )
    project = write_params(root / "project", repo_params(*overrides))
    measured = run_measured(["radflow", "stage", "ingest"], project, timeout=INGEST_TIMEOUT_S)
    assert measured.returncode == 0, measured.output[-5000:]
    private = project / "private"
    quarantine = read_csv(private / "quarantine.csv").set_index("source_path")
    linkage = read_csv(private / "linkage.csv")
    return CodecRun(source, project / "data/ingested", good, cases, measured, linkage, quarantine)


def test_the_run_exits_cleanly_and_prints_no_decoder_output_nor_identifier(codec_run: CodecRun) -> None:
    assert codec_run.measured.returncode == 0
    output = codec_run.measured.output
    assert [noise for noise in NOISE if noise in output] == [], output[-5000:]
    markers = planted_identifiers(codec_run.source / "good") | {str(codec_run.source)}
    assert len(markers) > 10
    assert scan_for_identifiers([codec_run.ingested], markers, [output]) == []


def test_no_good_file_is_lost(codec_run: CodecRun) -> None:
    assert codec_run.good - set(codec_run.linkage["source_path"]) == set(), codec_run.quarantine["reason"]


def test_every_damaged_file_is_ingested_or_named_with_a_specific_reason(codec_run: CodecRun) -> None:
    ingested, reasons = set(codec_run.linkage["source_path"]), codec_run.quarantine["reason"]
    every = [path for paths in codec_run.cases.values() for path in paths]
    assert [path for path in every if path not in ingested and path not in reasons] == []
    assert reasons.str.len().ge(8).all()
    assert not reasons.str.contains(str(codec_run.source), regex=False).any()  # paths: source_path only
    assert len(set(reasons.str.split(":").str[0])) >= 10  # categories, not one catch-all


def test_the_rust_panic_of_the_issue_is_a_quarantine_entry(codec_run: CodecRun) -> None:
    """RLE runs past their segment made pylibjpeg-rle panic (pyo3 PanicException, a BaseException)."""
    row = codec_run.quarantine.loc["damaged/rle-header/rle-replicate-overflow.dcm"]
    assert row["reason"].startswith("RLE decoder panicked: index out of bounds")
    assert row["exception_type"] == "PanicException"
    assert "panicked at" in row["detail"]  # Rust's message, in the operator-only report


def test_report_per_category(codec_run: CodecRun) -> None:
    """Cases, ingested, quarantined (and how many killed their worker) per category; then the totals."""
    ingested, quarantine = set(codec_run.linkage["source_path"]), codec_run.quarantine
    deaths = set(quarantine.index[quarantine["exception_type"].isin(DEATHS)])
    panics = set(quarantine.index[quarantine["exception_type"] == "PanicException"])
    print(f"\n{'category':24} cases ingested quarantined panics deaths unaccounted")
    totals: Counter[str] = Counter()
    for category, paths in sorted(codec_run.cases.items()):
        row = Counter(
            cases=len(paths),
            ingested=sum(path in ingested for path in paths),
            quarantined=sum(path in quarantine.index for path in paths),
            panics=sum(path in panics for path in paths),
            deaths=sum(path in deaths for path in paths),
        )
        row["unaccounted"] = row["cases"] - row["ingested"] - row["quarantined"]
        totals += row
        print(f"{category:24} " + " ".join(f"{row[key]:{len(key)}}" for key in _COLUMNS))
    lost = len(codec_run.good - ingested)
    print(f"{'all':24} " + " ".join(f"{totals[key]:{len(key)}}" for key in _COLUMNS))
    good = len(codec_run.good)
    print(f"crashes 0 (exit {codec_run.measured.returncode}), hangs 0, good files {good}, lost {lost}")
    assert totals["cases"] >= 400 and totals["unaccounted"] == 0 and lost == 0


_COLUMNS = ("cases", "ingested", "quarantined", "panics", "deaths", "unaccounted")
