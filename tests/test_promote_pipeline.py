"""evaluate -> promote -> predict on tiny outputs of the real upstream stages (demo data, ingest,
preprocess, train), and a check that no planted patient identifier reaches their outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import tasks.evaluate.stage as evaluate
import tasks.ingest.stage as ingest
import tasks.preprocess.stage as preprocess
import tasks.promote.stage as promote
import tasks.train.stage as train
from models.registry import Registry
from tasks.demo_data import write_demo_archive
from tasks.predict import predict_files
from tests.tiny_pipeline import project_params


@pytest.mark.slow
def test_real_stages_feed_evaluate_promote_and_predict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RADFLOW_SALT", "test-salt-not-secret-salt-for-tests-32-bytes-long")
    monkeypatch.chdir(tmp_path)
    params = project_params(tmp_path)
    params["promote"].update(min_margin_over_baseline=-1, require_learned=False)  # one epoch learns little
    raw = tmp_path / "raw"
    params["ingest"].update(source=str(raw), workers=1)
    params["demo"].update(patients=24, image_size=96)
    params["preprocess"]["image_size"] = 64
    params["train"].update(epochs=1, hidden_units=64, in_channels=1, augment=False, threads=1)
    write_demo_archive(raw, params)
    for stage in (ingest, preprocess, train, evaluate, promote):
        stage.main(params)

    out = Path(params["paths"]["evaluation"])
    metrics = json.loads((out / "metrics.json").read_text())
    detail = json.loads((out / "metrics_detail.json").read_text())
    assert 0.0 <= metrics["roc_auc"] <= 1.0 and "ci" in detail and "subgroups" in detail
    decision = json.loads((Path(params["paths"]["promotion"]) / "promotion.json").read_text())
    assert decision["promoted"] and decision["version"] == 1  # floors are 0 in project_params
    registry = Registry(Path(params["paths"]["registry"]))
    assert registry.load("champion").version == 1

    # Predict on the raw files with the champion: DICOM images get the ids ingest gave them (NIfTI
    # patients come from the labels CSV, which predict does not read).
    predictions = predict_files(
        [raw], params=params, model="champion", out=tmp_path / "p.csv", gradcam_dir=None
    )
    manifest = pd.read_csv(Path(params["paths"]["ingested"]) / "manifest.csv", dtype=str)
    ok = predictions[(predictions["status"] == "ok") & predictions["source_path"].str.endswith(".dcm")]
    known = dict(zip(manifest["image_id"], manifest["patient_id"], strict=True))
    assert len(ok) >= len(manifest) * 0.9
    assert [known[image] for image in ok["image_id"]] == ok["patient_id"].tolist()

    # Nothing identifying from the demo headers or source paths in evaluation or registry files.
    labels = pd.read_csv(raw / "labels.csv", dtype=str)
    dicom_patients = {Path(path).parts[0] for path in labels["path"] if path.endswith(".dcm")}  # MRN folders
    identifiers = dicom_patients | set(labels["patient"].dropna())
    for folder in (out, Path(params["paths"]["registry"]), Path(params["paths"]["promotion"])):
        for file in folder.rglob("*"):
            if file.is_file() and file.suffix in (".json", ".csv", ".md", ".html", ".jsonl"):
                text = file.read_text()
                assert not [name for name in identifiers if name in text], file
