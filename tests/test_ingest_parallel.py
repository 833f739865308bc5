"""Where per-file work runs: isolated local workers (time-bounded) or a Dask cluster on loopback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.ingest.decode import FAULT_ENV
from tasks.ingest.stage import run_ingest
from tests.dicom_factory import identity, write_dicom
from tests.ingest_helpers import loopback_cluster, settings_for, stored_images


@pytest.fixture
def four_patients(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`raw/p0..p3/image.dcm` (one patient each) and `raw/p0/junk.dcm`, not an image; returns tmp_path."""
    monkeypatch.setenv("RADFLOW_SALT", "parallel-salt-for-tests-32-bytes-long")
    for index in range(4):
        who = identity(patient_id=f"PAR{index:04d}", sop_uid=f"1.2.826.0.1.3680043.8.498.9{index}")
        write_dicom(tmp_path / "raw" / f"p{index}" / "image.dcm", who=who)
    (tmp_path / "raw" / "p0" / "junk.dcm").write_text("not an image")
    return tmp_path


def _tables(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.read_csv(root / "ingested/manifest.csv"), pd.read_csv(root / "private/quarantine.csv")


def test_dask_cluster_gives_the_same_result_as_local_workers(four_patients: Path) -> None:
    archive = four_patients
    local = settings_for(archive, labels="folders")
    run_ingest(local, archive / "local/ingested", archive / "local/private")
    with loopback_cluster(processes=False) as cluster:
        on_dask = settings_for(archive, labels="folders", dask_address=cluster.scheduler_address)
        summary = run_ingest(on_dask, archive / "dask/ingested", archive / "dask/private")
    assert summary.decoded == 5
    for local_table, dask_table in zip(_tables(archive / "local"), _tables(archive / "dask"), strict=True):
        placement = ["shard", "shard_offset"]  # Dask stores one shard per file, local workers per batch
        pd.testing.assert_frame_equal(
            local_table.drop(columns=placement, errors="ignore"),
            dask_table.drop(columns=placement, errors="ignore"),
        )
    local_images, dask_images = (
        stored_images(archive / "local/ingested"),
        stored_images(archive / "dask/ingested"),
    )
    assert local_images.keys() == dask_images.keys()
    assert all(np.array_equal(local_images[key], dask_images[key]) for key in local_images)


def test_a_decode_past_the_time_limit_is_quarantined_not_fatal(
    four_patients: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every image's decode hangs (the test-only hook) past a 0.2 s limit: the run survives and names
    each file's timeout. (A 1 ms limit on real decodes raced the machine: a fast one decodes in time.)"""
    archive = four_patients
    monkeypatch.setenv(FAULT_ENV, "decode-hang:image.dcm")
    settings = settings_for(archive, labels="folders", timeout_s=0.2, max_failed_fraction=1.0)
    summary = run_ingest(settings, archive / "ingested", archive / "private")
    _, quarantine = _tables(archive)
    timed_out = quarantine[quarantine["exception_type"] == "TimeoutError"]
    assert summary.images == 0 and len(timed_out) >= 4
    assert timed_out["reason"].str.startswith("decode timed out").all()
    assert not list((archive / "ingested/images").iterdir())  # no half-written leftovers
