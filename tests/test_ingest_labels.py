"""Labels from folder names or a CSV, patient keys from a file-name pattern, predefined split folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.common.errors import RadflowError
from tasks.ingest.stage import run_ingest
from tests.dicom_factory import identity, ramp, write_dicom, write_plain
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


def test_csv_labels_by_study_uid_and_accession(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PACS files have opaque names: rows keyed by StudyInstanceUID or Accession Number label them;
    neither value reaches the outputs (they are matched as pseudonyms)."""
    monkeypatch.setenv("RADFLOW_SALT", "labels")
    studies = {
        "1.2.826.0.1.3680043.8.498.7001": "ACCN-900001",
        "1.2.826.0.1.3680043.8.498.7002": "ACCN-900002",
    }
    for index, (study, accession) in enumerate(studies.items()):
        for instance in range(2):
            who = identity(study_uid=study, accession=accession, sop_uid=f"{study}.{instance}")
            write_dicom(
                tmp_path / "raw" / f"opaque{index}{instance}.dcm",
                ramp(maximum=100 + index * 10 + instance),
                who=who,
            )
    write_dicom(tmp_path / "raw" / "other.dcm", who=identity(study_uid="1.2.3.9", sop_uid="1.2.3.9.1"))
    (tmp_path / "raw" / "labels.csv").write_text(
        "path,study_uid,accession,label\n,1.2.826.0.1.3680043.8.498.7001,,effusion\n,,ACCN-900002,normal\n"
    )
    manifest = _run(tmp_path, labels="labels.csv")
    assert sorted(manifest["label"]) == ["", "effusion", "effusion", "normal", "normal"]
    outputs = (tmp_path / "ingested/manifest.csv").read_text() + (
        tmp_path / "private/linkage.csv"
    ).read_text()
    assert not any(value in outputs for value in [*studies, *studies.values()])


def test_a_labels_row_that_names_nothing_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADFLOW_SALT", "labels")
    _public_dataset(tmp_path, {"study1": ["a.png"]})
    (tmp_path / "raw" / "labels.csv").write_text("path,study_uid,label\nstudy1,,normal\n,,effusion\n")
    with pytest.raises(RadflowError, match="data row 2: no path / study_uid value"):
        _run(tmp_path, labels="labels.csv")
    (tmp_path / "raw" / "labels.csv").write_text("file,label\nstudy1,normal\n")
    with pytest.raises(RadflowError, match="one of \\['path', 'study_uid', 'accession'\\]"):
        _run(tmp_path, labels="labels.csv")
