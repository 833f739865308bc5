"""A CT series stored as single-frame instances is one volume: the slice strategy picks instances."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.ingest.stage import run_ingest
from tests.dicom_factory import identity, write_dicom
from tests.ingest_helpers import settings_for, stored_images


@pytest.mark.parametrize(
    ("strategy", "kept"), [("middle", [30]), ("n", [10, 30, 50]), ("all", [10, 20, 30, 40, 50])]
)
def test_series_instances_follow_the_slice_strategy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strategy: str, kept: list[int]
) -> None:
    monkeypatch.setenv("RADFLOW_SALT", "series-salt-for-tests-32-bytes-long")
    for index in (3, 1, 5, 2, 4):  # written out of order; position decides the order
        who = identity(sop_uid=f"1.2.826.0.1.3680043.8.498.7{index}")
        write_dicom(
            tmp_path / "raw" / "ct" / f"slice{index}.dcm",
            np.full((8, 8), 10 * index, np.uint16),
            who=who,
            modality="CT",
            ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
            ImagePositionPatient=[0, 0, 2.5 * index],
        )
    settings = settings_for(tmp_path, labels="folders", slice_strategy=strategy, slices=3)
    first = run_ingest(settings, tmp_path / "ingested", tmp_path / "private")
    values = sorted(int(pixels.mean()) for pixels in stored_images(tmp_path / "ingested").values())
    assert values == kept and first.images == len(kept)
    quarantine = pd.read_csv(tmp_path / "private/quarantine.csv")
    assert len(quarantine) == 5 - len(kept)
    assert quarantine["reason"].str.startswith("series slice not selected").all()
    assert run_ingest(settings, tmp_path / "ingested", tmp_path / "private").decoded == 0
