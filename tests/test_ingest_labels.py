"""Labels from folder names or a CSV, patient keys from a file-name pattern, predefined split folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.common.errors import RadflowError
from tasks.ingest.stage import run_ingest
from tests.dicom_factory import write_plain
from tests.ingest_helpers import settings_for

PATTERN = r"person(?P<patient>\d+)_"


def _public_dataset(root: Path, layout: dict[str, list[str]]) -> None:
    """A chest-X-ray-pneumonia-like tree: <split>/<CLASS>/<file>.jpeg, 8-bit grayscale."""
    files = [(folder, name) for folder, names in layout.items() for name in names]
    for index, (folder, name) in enumerate(files):
        write_plain(
            root / "raw" / folder / name, np.full((16, 16), 10 * index + 5, np.uint8)
        )  # distinct files


def _run(root: Path, **ingest: object) -> pd.DataFrame:
    run_ingest(settings_for(root, **ingest), root / "ingested", root / "private")
    return pd.read_csv(root / "ingested/manifest.csv", dtype=str, keep_default_na=False)


def test_folder_labels_pattern_patients_and_predefined_splits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RADFLOW_SALT", "labels")
    _public_dataset(
        tmp_path,
        {
            "train/NORMAL": ["person1_a.jpeg", "person1_b.jpeg"],
            "train/PNEUMONIA": ["person2_virus_1.jpeg"],
            "test/NORMAL": ["person3_a.jpeg"],
        },
    )
    write_plain(tmp_path / "raw" / "unsorted.png", np.zeros((8, 8), np.uint8))
    manifest = _run(tmp_path, labels="folders", patient_pattern=PATTERN, predefined_split=True)
    assert len(manifest) == 5
    by_split = manifest.groupby("predefined_split")["patient_id"].nunique().to_dict()
    assert by_split == {"": 1, "test": 1, "train": 2}
    assert sorted(manifest["label"]) == ["", "NORMAL", "NORMAL", "NORMAL", "PNEUMONIA"]  # one unlabeled


def test_a_patient_in_two_predefined_splits_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RADFLOW_SALT", "labels")
    _public_dataset(tmp_path, {"train/NORMAL": ["person1_a.jpeg"], "test/NORMAL": ["person1_b.jpeg"]})
    with pytest.raises(RadflowError, match="more than one predefined split") as caught:
        _run(tmp_path, labels="folders", patient_pattern=PATTERN, predefined_split=True)
    assert "person1" not in str(caught.value)


def test_csv_labels_by_folder_and_patient_column(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADFLOW_SALT", "labels")
    _public_dataset(tmp_path, {"study1": ["a.png", "b.png"], "study2": ["c.png"]})
    (tmp_path / "raw" / "labels.csv").write_text(
        "path,label,patient\nstudy1,effusion,PAT-1\nstudy2/c.png,normal,\n"
    )
    manifest = _run(tmp_path, labels="labels.csv").sort_values("label")
    assert list(manifest["label"]) == ["effusion", "effusion", "normal"]
    assert manifest["patient_id"].nunique() == 2  # study1's two images share the CSV patient
    assert "PAT-1" not in (tmp_path / "ingested/manifest.csv").read_text()
