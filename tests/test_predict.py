"""predict: real DICOM files through ingest + preprocess code and a verified registry model, decided at
the operating threshold registered with the model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from models.registry import Registry
from tasks.common.errors import RadflowError
from tasks.common.operating import OperatingPoint
from tasks.predict import predict_files
from tests.tiny_pipeline import CLASSES, constant_model, project_params, save_candidate

# constant_model's logits are all 0: p = 1/3 each, abnormal log-odds log(2/3 / 1/3) = ln 2 ~ 0.693.
LN2 = float(np.log(2))


def write_dicom(path: Path, patient: str) -> None:
    """A small 12-bit DX radiograph with a fake patient name and ID."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.1.1")  # digital X-ray
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.Modality = f"Doe^{patient}", patient, "DX"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Rows = ds.Columns = 48
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.random.default_rng(0).integers(0, 4096, (48, 48), dtype=np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, Path]:
    monkeypatch.setenv("RADFLOW_SALT", "test-salt-not-secret")
    params = project_params(tmp_path)
    save_candidate(constant_model(), tmp_path / "candidate")
    Registry(Path(params["paths"]["registry"])).register_champion(
        tmp_path / "candidate", metrics={}, model_card="", lineage={}, decision={}
    )
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    write_dicom(inputs / "a.dcm", "SECRET-ID-1")
    (inputs / "broken.dcm").write_bytes(b"not a dicom file")
    return params, inputs


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_predict_writes_probabilities_keyed_by_pseudonyms(setup: tuple[dict, Path], suffix: str) -> None:
    params, inputs = setup
    out = inputs.parent / f"predictions{suffix}"
    predict_files([inputs], params=params, model="champion", out=out, gradcam_dir=inputs.parent / "cams")
    rows = pd.read_csv(out) if suffix == ".csv" else pd.DataFrame(json.loads(out.read_text()))
    ok = rows[rows["status"] == "ok"]
    assert len(ok) == 1 and (rows["status"] != "ok").sum() == 1
    assert ok["patient_id"].iloc[0].startswith("P-") and "SECRET" not in out.read_text()
    assert np.allclose(ok[[f"prob_{c}" for c in CLASSES]].to_numpy(), 1 / 3, atol=1e-5)
    assert ok["predicted_label"].iloc[0] in CLASSES
    assert len(list((inputs.parent / "cams").glob("*.png"))) == 1


def register(params: dict, root: Path, metrics: dict) -> int:
    """A registered constant model with the given evaluation record."""
    save_candidate(constant_model(), root / "candidate")
    registry = Registry(Path(params["paths"]["registry"]))
    return registry.register_champion(
        root / "candidate", metrics=metrics, model_card="", lineage={}, decision={}
    )


@pytest.mark.parametrize(
    ("record", "threshold", "abnormal", "label"),
    [
        # Registered log-odds threshold below ln 2: abnormal, labelled with the likeliest abnormal class.
        ({"operating_point": OperatingPoint(CLASSES, "normal", 0.5).to_dict()}, 0.5, True, "effusion"),
        # Above ln 2: the negative class, although argmax would say "effusion".
        ({"operating_point": OperatingPoint(CLASSES, "normal", 0.8).to_dict()}, 0.8, False, "normal"),
        # Versions evaluated before the log-odds score: a threshold on 1 - p(normal) (here 2/3).
        ({"threshold": 0.7}, np.log(0.7 / 0.3), False, "normal"),
        ({"threshold": 0.6}, np.log(0.6 / 0.4), True, "effusion"),
    ],
)
def test_predict_applies_the_registered_threshold(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    record: dict,
    threshold: float,
    abnormal: bool,
    label: str,
) -> None:
    monkeypatch.setenv("RADFLOW_SALT", "test-salt-not-secret")
    params = project_params(tmp_path)
    version = register(params, tmp_path, record)
    write_dicom(tmp_path / "a.dcm", "SECRET-ID-1")
    predict_files(
        [tmp_path / "a.dcm"], params=params, model="champion", out=tmp_path / "p.csv", gradcam_dir=None
    )
    row = pd.read_csv(tmp_path / "p.csv").iloc[0]
    assert bool(row["abnormal"]) is abnormal and row["predicted_label"] == label
    assert row["abnormal_log_odds"] == pytest.approx(LN2) and row["threshold"] == pytest.approx(threshold)
    assert row["model_version"] == version == 1


def test_predict_without_a_registered_threshold_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RADFLOW_SALT", "test-salt-not-secret")
    params = project_params(tmp_path)
    register(params, tmp_path, {})
    write_dicom(tmp_path / "a.dcm", "SECRET-ID-1")
    rows = predict_files(
        [tmp_path / "a.dcm"], params=params, model="1", out=tmp_path / "p.csv", gradcam_dir=None
    )
    assert rows["abnormal"].isna().all() and rows["predicted_label"].iloc[0] == "effusion"  # argmax
    assert "model v1 (no registered operating threshold" in capsys.readouterr().out


def test_predict_refuses_tampered_model(setup: tuple[dict, Path]) -> None:
    params, inputs = setup
    weights = Registry(Path(params["paths"]["registry"])).load("champion").path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    with pytest.raises(RadflowError, match="checksum mismatch"):
        predict_files(
            [inputs], params=params, model="champion", out=inputs.parent / "p.csv", gradcam_dir=None
        )
