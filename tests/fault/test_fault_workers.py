"""A decoder that panics, crashes, aborts, is killed, runs out of memory or hangs costs its own file.

The test-only hook `RADFLOW_FAULT=decode-<action>:<file name>` makes the worker decoding that file fail
the way a broken native decoder does (SIGSEGV, os.abort(), SIGKILL, an allocation past RLIMIT_AS, a
pyo3-style panic, a hang); real damaged RLE / JPEG / JPEG 2000 files do the rest. Each victim shares
its batch with good files, so the retry of that batch one file at a time is exercised too. Output is
captured at the file-descriptor level: what native code prints must not reach the stage's output.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tasks.ingest.decode import FAULT_ENV
from tasks.ingest.stage import run_ingest
from tests.dicom_factory import identity, write_dicom
from tests.fault.codec_cases import damaged
from tests.ingest_helpers import loopback_cluster, settings_for

pytestmark = pytest.mark.fault

GOOD = 20  # more than one batch (16 files), so a victim's batch holds good files
# ingest.timeout_s: only a hang waits for it, so the others take params.yaml's 60 s, and the hang 10 s,
# ~160x the slowest good-file decode measured under load (60 ms, load average 18 on 2 cores): 3 s was
# tight enough for a descheduled worker to time a good file out.
TIMEOUT_S, HANG_TIMEOUT_S = 60, 10
NOISE = ("fault hook", "panicked at", "RUST_BACKTRACE", "stack backtrace", "Traceback", "Segmentation")
DEATHS = {  # hook action -> (reason category, exception type)
    "panic": ("DICOM decoder panicked", "PanicException"),
    "segfault": ("decoder crashed", "SIGSEGV"),
    "abort": ("decoder aborted", "SIGABRT"),
    "kill": ("decoder killed", "SIGKILL"),
    "memory": ("out of memory", "MemoryError"),
    "hang": ("decode timed out", "TimeoutError"),
}


@pytest.fixture
def victim_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`raw/good/` (GOOD small DICOMs) and `raw/bad/victim.dcm`, a valid file the hook makes fail."""
    monkeypatch.setenv("RADFLOW_SALT", "workers-salt-for-tests-32-bytes-long")
    for index in range(GOOD):
        write_dicom(
            tmp_path / "raw/good" / f"{index:02d}.dcm",
            who=identity(sop_uid=f"1.2.826.0.1.3680043.8.498.6{index:03d}"),
        )
    write_dicom(tmp_path / "raw/bad/victim.dcm", who=identity(sop_uid="1.2.826.0.1.3680043.8.498.6999"))
    return tmp_path


def _ingest(root: Path, **settings: object) -> tuple[set[str], pd.DataFrame]:
    """Run the stage (2 workers, every file may fail); returns the ingested paths and the quarantine."""
    options = {
        "labels": "folders",
        "max_failed_fraction": 1.0,
        "timeout_s": TIMEOUT_S,
        "worker_memory_mb": 256,
    }
    run_ingest(settings_for(root, **{**options, **settings}), root / "ingested", root / "private")
    linkage = pd.read_csv(root / "private/linkage.csv")
    quarantine = pd.read_csv(root / "private/quarantine.csv", dtype=str, keep_default_na=False)
    return set(linkage["source_path"]), quarantine.set_index("source_path")


@pytest.mark.parametrize(
    "action", [*(name for name in DEATHS if name != "hang"), pytest.param("hang", marks=pytest.mark.slow)]
)
def test_a_dying_decoder_costs_only_its_file(
    victim_archive: Path, action: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(FAULT_ENV, f"decode-{action}:victim.dcm")
    ingested, quarantine = _ingest(
        victim_archive, timeout_s=HANG_TIMEOUT_S if action == "hang" else TIMEOUT_S
    )
    assert ingested == {f"good/{index:02d}.dcm" for index in range(GOOD)}
    category, exception_type = DEATHS[action]
    assert quarantine.loc["bad/victim.dcm", "reason"].startswith(f"{category}:")
    assert quarantine.loc["bad/victim.dcm", "exception_type"] == exception_type
    if action == "segfault":  # what the worker printed before it died: the operator's report only
        assert "fault hook" in quarantine.loc["bad/victim.dcm", "detail"]
    output = "".join(capfd.readouterr())
    assert not [noise for noise in NOISE if noise in output], output
    assert {path.suffix for path in (victim_archive / "ingested/images").iterdir()} == {
        ".npys"
    }  # no leftovers


def test_damaged_rle_jpeg_and_jpeg2000_files_are_quarantined_with_their_codec(
    victim_archive: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The issue's check: good files beside damaged RLE (its Rust decoder panics), JPEG and J2K files."""
    for number, codec in enumerate(("rle", "jpeg-baseline", "jpeg2000")):
        damaged(codec, victim_archive / "raw/bad" / f"{codec}.dcm", f"1.2.826.0.1.3680043.8.498.65{number}")
    ingested, quarantine = _ingest(victim_archive)
    assert {f"good/{index:02d}.dcm" for index in range(GOOD)} <= ingested
    reasons = quarantine["reason"]
    assert reasons["bad/rle.dcm"].startswith("RLE decoder panicked: index out of bounds")
    assert quarantine.loc["bad/rle.dcm", "exception_type"] == "PanicException"
    assert "panicked at" in quarantine.loc["bad/rle.dcm", "detail"]  # Rust's own message, kept privately
    assert reasons["bad/jpeg-baseline.dcm"].startswith("JPEG baseline decoder failed:")
    assert reasons["bad/jpeg2000.dcm"].startswith("JPEG 2000 decoder failed:")
    output = "".join(capfd.readouterr())
    assert not [noise for noise in NOISE if noise in output], output


def test_a_real_decode_past_the_memory_limit_is_quarantined(victim_archive: Path) -> None:
    """No hook: a 4096x4096 rescaled image needs ~300 MB to decode, more than the 64 MB allowed."""
    import numpy as np

    big = np.random.default_rng(0).integers(0, 4096, (4096, 4096), dtype=np.uint16)
    write_dicom(
        victim_archive / "raw/bad/victim.dcm",
        big,
        who=identity(sop_uid="1.2.826.0.1.3680043.8.498.6998"),
        rescale=(2.0, -1024.0),
    )
    ingested, quarantine = _ingest(victim_archive, worker_memory_mb=64)
    assert len(ingested) == GOOD
    assert (
        quarantine.loc["bad/victim.dcm", "reason"]
        == "out of memory: decoding needs more than ingest.worker_memory_mb=64"
    )


def test_two_deaths_in_one_batch_convict_both_and_lose_nothing(
    victim_archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retry runs the dead batch's files one at a time; the second culprit dies in that retry too."""
    monkeypatch.setenv(FAULT_ENV, "decode-segfault:03.dcm,decode-abort:05.dcm")
    ingested, quarantine = _ingest(victim_archive)
    assert ingested == {f"good/{index:02d}.dcm" for index in range(GOOD) if index not in (3, 5)} | {
        "bad/victim.dcm"
    }
    assert list(quarantine["exception_type"]) == ["SIGSEGV", "SIGABRT"]


@pytest.mark.slow
def test_dask_tasks_isolate_their_files_too(victim_archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a cluster (worker processes under a nanny: daemonic) each task decodes in a forkserver child:
    a segfault or panic ends that child only."""
    damaged("rle", victim_archive / "raw/bad/rle.dcm", "1.2.826.0.1.3680043.8.498.660")
    monkeypatch.setenv(FAULT_ENV, "decode-segfault:victim.dcm")
    with loopback_cluster(processes=True) as cluster:  # a worker process under a nanny, daemonic
        ingested, quarantine = _ingest(victim_archive, dask_address=cluster.scheduler_address)
    assert ingested == {f"good/{index:02d}.dcm" for index in range(GOOD)}
    assert quarantine.loc["bad/victim.dcm", "exception_type"] == "SIGSEGV"
    assert quarantine.loc["bad/rle.dcm", "reason"].startswith("RLE decoder panicked")
