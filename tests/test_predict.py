"""predict: real DICOM/PNG files through ingest + preprocess code and a verified registry model, decided
at the operating threshold registered with the model; the out-of-distribution screen, Grad-CAM names
and the exit code."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from models.registry import Registry
from tasks.common.errors import RadflowError
from tasks.common.operating import OperatingPoint
from tasks.common.params import parse
from tasks.demo_data.synth import chest_image
from tasks.predict import PredictParams, gradcam_names, predict_files
from tests.defaults import write_params
from tests.dicom_factory import identity, write_dicom, write_plain
from tests.leakscan import planted_identifiers, scan_for_identifiers
from tests.tiny_pipeline import (
    CLASSES,
    SIZE,
    constant_model,
    profiled_config,
    project_params,
    register_tiny_champion,
    save_candidate,
)

# constant_model's logits are all 0: p = 1/3 each, abnormal log-odds log(2/3 / 1/3) = ln 2 ~ 0.693.
LN2 = float(np.log(2))


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, Path]:
    """A constant champion, and `inputs/`: a 12-bit DX radiograph of patient SECRET-ID-1 and a broken file."""
    monkeypatch.setenv("RADFLOW_SALT", "test-salt-not-secret-salt-for-tests-32-bytes-long")
    params = project_params(tmp_path)
    register_tiny_champion(params, tmp_path / "candidate")
    inputs = tmp_path / "inputs"
    pixels = np.random.default_rng(0).integers(0, 4096, (48, 48), dtype=np.uint16)
    write_dicom(inputs / "a.dcm", pixels, who=identity(patient_name="DOE^SECRET", patient_id="SECRET-ID-1"))
    (inputs / "broken.dcm").write_bytes(b"not a dicom file")
    return params, inputs


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_predict_writes_probabilities_keyed_by_pseudonyms(setup: tuple[dict, Path], suffix: str) -> None:
    params, inputs = setup
    out = inputs.parent / f"predictions{suffix}"
    predict_files([inputs], params=params, model="champion", out=out, gradcam_dir=inputs.parent / "cams")
    rows = pd.read_csv(out) if suffix == ".csv" else pd.DataFrame(json.loads(out.read_text()))
    ok = rows[rows["status"] == "ok"]
    assert len(ok) == 1 and list(rows["status"]) == ["ok", "quarantined"]
    assert "not DICOM" in rows["reason"].iloc[1]
    assert ok["patient_id"].iloc[0].startswith("P-")
    assert scan_for_identifiers([out], planted_identifiers(inputs)) == []  # SECRET-ID-1, names, UIDs...
    assert np.allclose(ok[[f"prob_{c}" for c in CLASSES]].to_numpy(), 1 / 3, atol=1e-5)
    assert ok["predicted_label"].iloc[0] in CLASSES
    assert [p.name for p in (inputs.parent / "cams").glob("*.png")] == ["a.png"] == list(ok["gradcam"])


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
    monkeypatch.setenv("RADFLOW_SALT", "test-salt-not-secret-salt-for-tests-32-bytes-long")
    params = project_params(tmp_path)
    version = register(params, tmp_path, record)
    write_dicom(tmp_path / "a.dcm", who=identity(patient_id="SECRET-ID-1"))
    predict_files(
        [tmp_path / "a.dcm"], params=params, model="champion", out=tmp_path / "p.csv", gradcam_dir=None
    )
    row = pd.read_csv(tmp_path / "p.csv").iloc[0]
    assert bool(row["abnormal"]) is abnormal and row["predicted_label"] == label
    assert row["abnormal_log_odds"] == pytest.approx(LN2) and row["threshold"] == pytest.approx(threshold)
    assert row["model_version"] == f"v{version}" == "v1"


def test_predict_without_a_registered_threshold_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RADFLOW_SALT", "test-salt-not-secret-salt-for-tests-32-bytes-long")
    params = project_params(tmp_path)
    register(params, tmp_path, {})
    write_dicom(tmp_path / "a.dcm", who=identity(patient_id="SECRET-ID-1"))
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


def chest_dicom(path: Path, rng: np.random.Generator, modality: str = "DX") -> Path:
    """A synthetic chest radiograph (the demo's generator) as a DICOM file."""
    return write_dicom(path, chest_image(SIZE, "normal", rng), modality=modality)


@pytest.fixture
def profiled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A registered model whose config carries the profile of 24 chest DX radiographs, as train writes it."""
    monkeypatch.setenv("RADFLOW_SALT", "test-salt-not-secret-salt-for-tests-32-bytes-long")
    params = project_params(tmp_path)
    rng = np.random.default_rng(1)
    config = profiled_config(params, rng)
    register_tiny_champion(params, tmp_path / "candidate", config=config)
    return params


def test_inputs_unlike_the_training_data_are_flagged_not_classified(profiled: dict, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    inputs = tmp_path / "inputs"
    chest_dicom(inputs / "chest.dcm", rng)
    chest_dicom(inputs / "ct.dcm", rng, modality="CT")  # a header the training data never had
    noise = rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)  # no header to compare: statistics
    write_plain(inputs / "noise.png", noise)
    out = tmp_path / "p.csv"
    predict_files([inputs], params=profiled, model="champion", out=out, gradcam_dir=None)
    table = pd.read_csv(out, keep_default_na=False)
    rows = table.set_index(table["source_path"].map(lambda path: Path(path).name))
    assert rows["status"].to_dict() == {
        "chest.dcm": "ok", "ct.dcm": "out_of_distribution", "noise.png": "out_of_distribution",
    }  # fmt: skip
    assert rows.loc["chest.dcm", "reason"] == ""
    assert rows.loc["ct.dcm", "reason"] == "modality CT never seen in training (DX)"
    assert "image edges 0.340 outside the training range" in rows.loc["noise.png", "reason"]
    assert rows.loc[["ct.dcm", "noise.png"], "predicted_label"].eq("").all()


def test_predict_exits_non_zero_when_nothing_could_be_classified(
    profiled: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = tmp_path / "inputs"
    chest_dicom(inputs / "ct.dcm", np.random.default_rng(3), modality="CT")
    (inputs / "broken.dcm").write_bytes(b"not a dicom file")
    write_params(tmp_path, profiled)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    failed = runner.invoke(app, ["predict", "inputs", "--out", "p.csv"])
    assert failed.exit_code == 1 and "Traceback" not in failed.output
    assert "no input could be classified" in failed.output
    assert list(pd.read_csv(tmp_path / "p.csv")["status"]) == ["quarantined", "out_of_distribution"]
    chest_dicom(inputs / "chest.dcm", np.random.default_rng(4))
    passed = runner.invoke(app, ["predict", "inputs", "--out", "p.csv"])
    assert passed.exit_code == 0, passed.output
    assert (
        "1 image(s) classified, 1 out of distribution (not classified), 0 file(s) skipped, 1 quarantined"
        in passed.output
    )


def test_gradcam_files_are_named_after_the_inputs() -> None:
    frame = pd.DataFrame(
        {
            "source_path": [
                "a/scan.dcm",
                "b/scan.dcm",
                "c/1.2.840.5.dcm",
                "d/vol.nii.gz",
                "d/vol.nii.gz",
                "e/x",
            ],
            "frame": [0, 0, 0, 2, 3, 0],
        }
    )
    assert gradcam_names(frame) == [
        "scan.png", "scan-2.png", "1.2.840.5.png", "vol_frame2.png", "vol_frame3.png", "x.png",
    ]  # fmt: skip


def test_an_input_whose_name_is_not_utf8_is_classified_and_reported_escaped(setup: tuple[dict, Path]) -> None:
    """A Latin-1 name (`M\\xfcller.png`) cannot go into the UTF-8 report as it is: it is classified, and
    named with its bad byte escaped (it crashed the report before)."""
    params, inputs = setup
    write_plain(Path(os.fsdecode(os.fsencode(inputs) + b"/M\xfcller.png")), np.full((48, 48), 120, np.uint8))
    out = inputs.parent / "predictions.csv"
    predict_files([inputs], params=params, model="champion", out=out, gradcam_dir=inputs.parent / "cams")
    rows = pd.read_csv(out).set_index("source_path")
    assert rows.loc[f"{inputs}/M\\xfcller.png", "status"] == "ok"
    assert (inputs.parent / "cams" / "M\\xfcller.png").exists()


def test_a_bad_margin_is_refused_naming_what_is_valid() -> None:
    with pytest.raises(RadflowError, match=r"^predict.ood_margin: invalid value -1; valid: a number >= 0$"):
        parse({"ood_margin": -1}, PredictParams)
