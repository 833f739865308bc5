"""Labels from folder names or a CSV; patient keys from public naming conventions, a regex or the DICOM
header; a data set's own split folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.common.errors import RadflowError
from tasks.ingest.labels import LabelIndex
from tasks.ingest.patients import split_alternatives
from tasks.ingest.progress import Summary
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


def _run(root: Path, **ingest: object) -> tuple[pd.DataFrame, Summary]:
    summary = run_ingest(settings_for(root, **ingest), root / "ingested", root / "private")
    return pd.read_csv(root / "ingested/manifest.csv", dtype=str, keep_default_na=False), summary


def _lookup(tmp_path: Path, relative: str, **ingest: object) -> tuple[str, str, str, str]:
    """(label, raw patient key, patient source, split) for one path, with params.yaml's settings."""
    (tmp_path / "raw").mkdir(exist_ok=True)
    found = LabelIndex(settings_for(tmp_path, labels="folders", **ingest), b"salt").lookup(relative)
    return found.label, found.patient, found.patient_source, found.split


@pytest.mark.parametrize(
    ("relative", "patient", "convention"),
    [
        ("train/PNEUMONIA/person12_bacteria_45.jpeg", "person12", "kaggle-chest-xray"),
        ("test/PNEUMONIA/person12_virus_46.jpeg", "person12", "kaggle-chest-xray"),
        ("train/NORMAL/IM-0115-0001.jpeg", "IM-0115", "kaggle-chest-xray"),
        ("val/NORMAL/NORMAL2-IM-0003-0001.jpeg", "NORMAL2-IM-0003", "kaggle-chest-xray"),
        ("Effusion/images_001/00000001_000.png", "00000001", "nih-chestxray14"),
        ("Pleural Effusion/train/patient00001/study1/view1_frontal.jpg", "patient00001", "chexpert"),
        ("Edema/files/p10/p10000032/s50414267/02aa804e-bde0afdd.jpg", "p10000032", "mimic-cxr-jpg"),
        ("PNEUMONIA/pt042/visit1/view1.jpg", "pt042", "folder"),
        ("train/NORMAL/case7/a.png", "case7", "folder"),
        ("train/NORMAL/scan_0001.png", "", ""),  # nothing names a patient
    ],
)
def test_public_naming_conventions(tmp_path: Path, relative: str, patient: str, convention: str) -> None:
    _, key, source, _ = _lookup(tmp_path, relative)
    assert (key, source) == (patient, convention)


@pytest.mark.parametrize(
    ("relative", "label", "split"),
    [
        ("train/NORMAL/x.jpeg", "NORMAL", "train"),
        ("chest_xray/test/PNEUMONIA/x.jpeg", "PNEUMONIA", "test"),  # a wrapper folder above the splits
        ("PNEUMONIA/patient042/study1/view1.jpg", "PNEUMONIA", ""),  # any nesting below the class
        ("brain_mr/series1/img001.dcm", "brain_mr", ""),
        ("nodule/Validation/x.png", "nodule", "val"),  # the split folder below the class
        ("x.png", "", ""),
    ],
)
def test_class_is_the_first_folder_below_the_split_folder(
    tmp_path: Path, relative: str, label: str, split: str
) -> None:
    found_label, _, _, found_split = _lookup(tmp_path, relative)
    assert (found_label, found_split) == (label, split)


def test_an_explicit_regex_overrides_and_may_repeat_the_group_name(tmp_path: Path) -> None:
    pattern = r"person(?P<patient>\d+)_|IM-(?P<patient>\d+)-"  # Python's re alone refuses this
    assert _lookup(tmp_path, "train/P/person12_virus_4.jpeg", patient_pattern=pattern)[1:3] == (
        "12",
        "pattern",
    )
    assert _lookup(tmp_path, "train/N/IM-0115-0001.jpeg", patient_pattern=pattern)[1:3] == ("0115", "pattern")
    # searched in the file name first, then in the whole path; no match: no patient
    assert _lookup(tmp_path, "ward9/N/x.png", patient_pattern=r"ward\d+")[1] == "ward9"
    assert _lookup(tmp_path, "train/P/patient3/x.png", patient_pattern=pattern)[1:3] == ("", "")
    assert _lookup(tmp_path, "train/P/patient3/x.png", patient_pattern=None)[1:3] == ("", "")


def test_a_bad_regex_is_one_line_naming_what_is_valid(tmp_path: Path) -> None:
    for pattern, message in (
        ("person(?P<patient>\\d+", "not a valid regular expression"),
        ("(a(?P<p>x)|(?P<p>y))", "only across top-level '|' alternatives"),
    ):
        with pytest.raises(RadflowError, match=message) as caught:
            settings_for(tmp_path, patient_pattern=pattern)
        assert "\n" not in str(caught.value)


def test_alternatives_split_only_at_the_top_level() -> None:
    assert split_alternatives(r"a(b|c)|[|\]]x|\|y|z") == ["a(b|c)", r"[|\]]x", r"\|y", "z"]
    assert split_alternatives("[]|]|b") == ["[]|]", "b"]


def test_kaggle_layout_patients_classes_and_splits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADFLOW_SALT", "labels-salt-for-tests-32-bytes-long")
    _public_dataset(
        tmp_path,
        {
            "train/NORMAL": ["IM-0001-0001.jpeg", "IM-0001-0002.jpeg", "NORMAL2-IM-0001-0001.jpeg"],
            "train/PNEUMONIA": ["person2_virus_1.jpeg", "person2_bacteria_3.jpeg"],
            "test/NORMAL": ["IM-0009-0001.jpeg"],
        },
    )
    write_plain(tmp_path / "raw" / "unsorted.png", np.zeros((8, 8), np.uint8))
    manifest, summary = _run(tmp_path, labels="folders")  # params.yaml's defaults otherwise
    assert len(manifest) == 7
    labelled = manifest[manifest["label"] != ""]
    assert labelled.groupby("predefined_split")["patient_id"].nunique().to_dict() == {"test": 1, "train": 3}
    assert set(labelled["patient_source"]) == {"kaggle-chest-xray"}
    assert "person2" not in (tmp_path / "ingested/manifest.csv").read_text()
    overview = summary.overview
    assert overview.classes == {"NORMAL": 4, "PNEUMONIA": 2}
    assert overview.patients_by_source == {"kaggle-chest-xray": 4}
    assert overview.splits == {"train": 5, "test": 1} and overview.warnings() == []
    rows = dict(overview.rows())
    assert rows["patients"] == "4 from Kaggle chest X-ray names (6 images)"
    assert rows["splits"] == "the data set's own folders: train 5, test 1"
    _, again = _run(tmp_path, labels="folders")  # nothing changed: the summary comes from the last run
    assert again.decoded == 0 and again.overview == overview


def test_a_patient_in_two_split_folders_is_reported_with_the_remedy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RADFLOW_SALT", "labels-salt-for-tests-32-bytes-long")
    _public_dataset(tmp_path, {"train/NORMAL": ["person1_a.jpeg"], "test/NORMAL": ["person1_b.jpeg"]})
    _, summary = _run(tmp_path, labels="folders", patient_pattern=PATTERN)
    assert summary.overview.crossing == 1
    (warning,) = summary.overview.warnings()
    assert "more than one of the data set's own split folders" in warning
    assert "ingest.predefined_split: false" in warning and "person1" not in warning
    manifest, summary = _run(tmp_path, labels="folders", patient_pattern=PATTERN, predefined_split=False)
    assert set(manifest["predefined_split"]) == {""} and summary.overview.crossing == 0


def test_dicom_files_keep_their_header_patient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADFLOW_SALT", "labels-salt-for-tests-32-bytes-long")
    for n in range(2):  # one header patient, though the folders would name two
        write_dicom(tmp_path / f"raw/train/PNEUMONIA/person{n}_x/1.dcm", who=identity(sop_uid=f"1.2.3.{n}"))
    manifest, summary = _run(tmp_path, labels="folders")
    assert list(manifest["patient_source"]) == ["header", "header"]
    assert manifest["patient_id"].nunique() == 1 and summary.overview.patients_by_source == {"header": 1}


def test_one_folder_for_a_whole_class_is_no_patient_and_is_said_loudly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RADFLOW_SALT", "labels-salt-for-tests-32-bytes-long")
    _public_dataset(tmp_path, {"NORMAL/images": ["a.png", "b.png"], "nodule/images": ["c.png", "d.png"]})
    manifest, summary = _run(tmp_path, labels="folders")
    assert set(manifest["patient_source"]) == {""} and manifest["patient_id"].nunique() == 4
    (warning,) = summary.overview.warnings()
    assert "4 of 4 labelled images have no patient id" in warning and "metrics may be optimistic" in warning


def test_csv_labels_by_folder_and_patient_column(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADFLOW_SALT", "labels-salt-for-tests-32-bytes-long")
    _public_dataset(tmp_path, {"study1": ["a.png", "b.png"], "study2": ["c.png"]})
    (tmp_path / "raw" / "labels.csv").write_text(
        "path,label,patient\nstudy1,effusion,PAT-1\nstudy2/c.png,normal,\n"
    )
    manifest, _ = _run(tmp_path, labels="labels.csv", patient_pattern=None)
    manifest = manifest.sort_values("label")
    assert list(manifest["label"]) == ["effusion", "effusion", "normal"]
    assert list(manifest["patient_source"]) == ["csv", "csv", ""]
    assert manifest["patient_id"].nunique() == 2  # study1's two images share the CSV patient
    assert "PAT-1" not in (tmp_path / "ingested/manifest.csv").read_text()


def test_csv_labels_by_study_uid_and_accession(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PACS files have opaque names: rows keyed by StudyInstanceUID or Accession Number label them;
    neither value reaches the outputs (they are matched as pseudonyms)."""
    monkeypatch.setenv("RADFLOW_SALT", "labels-salt-for-tests-32-bytes-long")
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
    manifest, _ = _run(tmp_path, labels="labels.csv")
    assert sorted(manifest["label"]) == ["", "effusion", "effusion", "normal", "normal"]
    outputs = (tmp_path / "ingested/manifest.csv").read_text() + (
        tmp_path / "private/linkage.csv"
    ).read_text()
    assert not any(value in outputs for value in [*studies, *studies.values()])


def test_a_labels_row_that_names_nothing_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADFLOW_SALT", "labels-salt-for-tests-32-bytes-long")
    _public_dataset(tmp_path, {"study1": ["a.png"]})
    (tmp_path / "raw" / "labels.csv").write_text("path,study_uid,label\nstudy1,,normal\n,,effusion\n")
    with pytest.raises(RadflowError, match="data row 2: no path / study_uid value"):
        _run(tmp_path, labels="labels.csv")
    (tmp_path / "raw" / "labels.csv").write_text("file,label\nstudy1,normal\n")
    with pytest.raises(RadflowError, match="one of \\['path', 'study_uid', 'accession'\\]"):
        _run(tmp_path, labels="labels.csv")


def test_csv_rows_that_label_nothing_and_unlabeled_images_are_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Windows-style path still matches; a typo and a folder prefix label nothing, and the summary
    says which rows (by number, never by value) and how many images are left unlabeled."""
    monkeypatch.setenv("RADFLOW_SALT", "labels-salt-for-tests-32-bytes-long")
    _public_dataset(tmp_path, {"Smith_John": ["a.png", "b.png"], "Doe_Jane": ["c.png"], "other": ["d.png"]})
    (tmp_path / "raw" / "other" / "broken.png").write_bytes(b"not a PNG")  # quarantined, but it exists
    (tmp_path / "raw" / "labels.csv").write_text(
        "path,label\nSmith_John\\a.png,effusion\nSmith_John/b.png,normal\nSmith_Jhon/c.png,normal\n"
        "raw/Doe_Jane/c.png,normal\nother/broken.png,normal\n"
    )
    manifest, summary = _run(tmp_path, labels="labels.csv")
    assert sorted(manifest["label"]) == ["", "", "effusion", "normal"]
    assert summary.label_rows == 5 and summary.unused_label_rows == [3, 4] and summary.unlabeled == 2
    summary.render()
    printed = " ".join(capsys.readouterr().err.split())
    assert "2 of 4 images have no label (no row of labels.csv names them" in printed
    assert "2 of 5 rows of labels.csv label no image (data rows 3, 4)" in printed
    assert not any(name in printed for name in ("Smith", "Jhon", "Doe_Jane"))  # names stay in the CSV

    _, again = _run(tmp_path, labels="labels.csv")  # nothing changed: the same counts from the state
    assert again.unused_label_rows == [3, 4] and again.decoded == 0


def test_two_rows_that_label_one_file_differently_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RADFLOW_SALT", "labels-salt-for-tests-32-bytes-long")
    _public_dataset(tmp_path, {"study1": ["a.png"]})
    (tmp_path / "raw" / "labels.csv").write_text("path,label\nstudy1/a.png,normal\n./study1/a.png,normal\n")
    manifest, _ = _run(tmp_path, labels="labels.csv")  # the same label twice is fine
    assert list(manifest["label"]) == ["normal"]
    (tmp_path / "raw" / "labels.csv").write_text("path,label\nstudy1/a.png,normal\nstudy1\\a.png,effusion\n")
    with pytest.raises(RadflowError, match="data rows 1 and 2 give the same path a different label"):
        _run(tmp_path, labels="labels.csv")
