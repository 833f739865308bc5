"""A public data set's layout, end to end: a Kaggle-chest-X-ray-like archive through a real `dvc repro`
with only `ingest.source` and `ingest.labels: folders` set (plus the small-and-quick settings every
pipeline test uses): patients are recognised from the file names, no patient is in two splits, and the
data set's own test folder is the test split."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from tests.leakscan import scan_for_identifiers
from tests.project import SMALL_DEMO, make_project, run_ok
from tests.public_layout import ct_like_slice, write_kaggle_archive

pytestmark = pytest.mark.slow

ARCHIVE = "archive/chest_xray"
OVERRIDES = (
    *SMALL_DEMO,  # small and quick, and floors a few epochs need not reach (demo.* change nothing here)
    f"ingest.source={ARCHIVE}",
    "ingest.labels=folders",
    "train.epochs=4",
)


@pytest.fixture(scope="module")
def kaggle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[str]], str]:
    """A project after `dvc repro promote` on the archive; returns it, the archive's patients per split
    and the run's log. (The demo_data stage feeds nothing here, so only promote's upstream runs.)"""
    project = make_project(tmp_path_factory.mktemp("kaggle"), OVERRIDES)
    patients = write_kaggle_archive(project / ARCHIVE)
    return project, patients, run_ok(["dvc", "repro", "promote"], project)


def test_patients_are_recognised_from_the_file_names(kaggle: tuple[Path, dict, str]) -> None:
    project, patients, log = kaggle
    manifest = pd.read_csv(project / "data/ingested/manifest.csv", keep_default_na=False)
    assert set(manifest["patient_source"]) == {"kaggle-chest-xray"}
    assert manifest["patient_id"].nunique() == sum(map(len, patients.values()))
    flat = " ".join(log.split())  # the summary table wraps
    assert f"{manifest['patient_id'].nunique()} from Kaggle chest X-ray names" in flat
    assert "the data set's own folders: train" in flat and "warning:" not in flat
    facts = json.loads((project / "data/preprocessed/classes.json").read_text())
    assert facts["classes"] == ["NORMAL", "PNEUMONIA"] and facts["patients_recognised"] is True


def test_no_patient_in_two_splits_and_the_test_folder_is_the_test_split(
    kaggle: tuple[Path, dict, str],
) -> None:
    project, _, _ = kaggle
    index = pd.read_csv(project / "data/preprocessed/index.csv", keep_default_na=False)
    assert index.groupby("patient_id")["split"].nunique().max() == 1
    linkage = pd.read_csv(project / "private/linkage.csv")
    test_folder = set(linkage.loc[linkage["source_path"].str.startswith("test/"), "image_id"])
    assert set(index.loc[index["split"] == "test", "image_id"]) == test_folder
    val_folder = set(linkage.loc[linkage["source_path"].str.startswith("val/"), "image_id"])
    val = set(index.loc[index["split"] == "val", "image_id"])
    assert val_folder < val  # the tiny val folder stays val, topped up with train patients, and said so
    (note,) = json.loads((project / "data/preprocessed/classes.json").read_text())["split_notes"]
    assert "fewer than preprocess.min_val_images" in note


def test_the_model_is_evaluated_registered_and_screens_predict_inputs(kaggle: tuple[Path, dict, str]) -> None:
    project, _, _ = kaggle
    metrics = json.loads((project / "data/evaluation/metrics.json").read_text())
    detail = json.loads((project / "data/evaluation/metrics_detail.json").read_text())
    print(f"Kaggle-layout test ROC-AUC: {metrics['roc_auc']:.3f} ({detail['n_test_images']} images)")
    assert metrics["roc_auc"] > 0.7
    assert json.loads((project / "data/promotion/promotion.json").read_text())["promoted"] is True
    config = json.loads((project / "data/model/config.json").read_text())
    assert config["data_profile"]["header"]["photometric"].keys() == {"MONOCHROME2", "RGB"}
    Image.fromarray(ct_like_slice()).save(project / "ct_slice.png")
    run_ok(["radflow", "predict", f"{ARCHIVE}/test", "ct_slice.png", "--out", "predictions.csv"], project)
    rows = pd.read_csv(project / "predictions.csv", keep_default_na=False).set_index("source_path")
    assert rows.loc["ct_slice.png", "status"] == "out_of_distribution"
    assert (rows.drop("ct_slice.png")["status"] == "ok").mean() > 0.9  # its own kind is rarely flagged


def test_no_file_name_patient_id_reaches_the_outputs(kaggle: tuple[Path, dict, str]) -> None:
    project, patients, log = kaggle
    keys = {key for split in patients.values() for key in split}
    outputs = [p for p in (project / "data").iterdir()]
    assert scan_for_identifiers([*outputs, project / "registry", project / "dvc.lock"], keys, [log]) == []
