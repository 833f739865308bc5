"""The demo archive: deterministic, hospital-like, with broken files and a learnable signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict

from tasks.demo_data import BROKEN_FILES, CLASSES, REPORT_FILE, write_demo_archive
from tasks.demo_data.synth import chest_image
from tests.defaults import repo_params
from tests.leakscan import IDENTIFYING_KEYWORDS
from tests.project import file_contents


@pytest.fixture(scope="module")
def params() -> dict:
    return repo_params("demo.images_per_patient=4", "demo.image_size=48", "demo.nifti_volumes=2")


@pytest.fixture(scope="module")
def demo_archive(tmp_path_factory: pytest.TempPathFactory, params: dict) -> Path:
    """9 patients' demo archive, seed 7."""
    folder = tmp_path_factory.mktemp("demo") / "raw"
    write_demo_archive(folder, params, patients=9, seed=7)
    return folder


def test_same_seed_gives_byte_identical_files(demo_archive: Path, params: dict, tmp_path: Path) -> None:
    write_demo_archive(tmp_path / "again", params, patients=9, seed=7)
    assert file_contents(tmp_path / "again") == file_contents(demo_archive)
    write_demo_archive(tmp_path / "other", params, patients=9, seed=8)
    assert file_contents(tmp_path / "other") != file_contents(demo_archive)


def test_labels_list_every_file_but_the_report(demo_archive: Path) -> None:
    labels = pd.read_csv(demo_archive / "labels.csv", dtype=str, keep_default_na=False)
    assert list(labels.columns) == ["path", "label", "patient"]
    on_disk = {p for p in file_contents(demo_archive) if p != "labels.csv"}
    assert set(labels["path"]) == {p for p in on_disk if not p.endswith(REPORT_FILE)}
    assert set(labels["label"]) == set(CLASSES)
    nifti = labels[labels["path"].str.endswith(".nii.gz")]
    assert len(nifti) == 2 and nifti["patient"].str.len().gt(0).all()
    assert {Path(p).name for p in labels["path"]} >= set(BROKEN_FILES)


def test_headers_are_hospital_like(demo_archive: Path) -> None:
    images = [p for p in demo_archive.rglob("*.dcm") if p.name[0].isdigit()]
    assert len(images) == 9 * 4
    syntaxes, photometrics = set(), set()
    for path in images:
        ds = pydicom.dcmread(path)
        syntaxes.add(ds.file_meta.TransferSyntaxUID)
        photometrics.add(ds.PhotometricInterpretation)
        assert ds.Modality in ("DX", "CR") and ds.BitsStored == 12 and ds.BitsAllocated == 16
        assert path.parts[-3] == ds.PatientID  # the folder carries the patient id, as archives do
        for keyword in IDENTIFYING_KEYWORDS:  # planted, so that ingest's de-identification is exercised
            assert str(ds.get(keyword, "")).strip(), keyword
        assert ds.PatientID in str(ds[0x0011, 0x1001].value)  # identifying text in a private tag
        assert ds.pixel_array.shape == (48, 48)
    assert len(syntaxes) >= 5
    assert photometrics == {"MONOCHROME1", "MONOCHROME2"}


def test_classes_are_learnable_but_not_identical() -> None:
    """A random forest on 16x16 thumbnails separates the classes: the signal survives downsampling."""
    rng = np.random.default_rng(3)
    labels = np.arange(150) % len(CLASSES)
    images = np.stack([chest_image(64, CLASSES[c], rng) for c in labels]).astype(np.float32)  # (N, 64, 64)
    thumbs = images.reshape(len(images), 16, 4, 16, 4).mean(axis=(2, 4)).reshape(len(images), -1)
    forest = RandomForestClassifier(n_estimators=100, random_state=0)
    probabilities = cross_val_predict(forest, thumbs, labels, cv=3, method="predict_proba")
    assert roc_auc_score(labels, probabilities, multi_class="ovr") >= 0.85
    assert len({img.tobytes() for img in images}) == len(images)
