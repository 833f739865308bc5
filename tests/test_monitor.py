"""radflow monitor: drift of generated arrivals from another scanner is flagged with the attributes that
moved while arrivals like the training data are not (false-alarm rate over repeated draws), decay is
caught by temporal validation with intervals, and the command runs end to end on a predict log."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.settings import retrain_params
from tasks.common.data_profile import describe, describe_store, image_statistics
from tasks.common.errors import RadflowError
from tasks.common.operating import OperatingPoint
from tasks.common.params import parse_section
from tasks.demo_data.synth import chest_image
from tasks.ingest.records import ImageMeta
from tasks.monitor.analysis import Reference, analyse, arrivals_frame
from tasks.monitor.drift import holm
from tasks.monitor.entries import entry
from tasks.monitor.policy import retrain_decision
from tasks.monitor.settings import MonitorParams, monitor_params
from tasks.preprocess.stage import PreprocessParams
from tasks.preprocess.transform import image_to_tensor
from tests.defaults import repo_params, settings, write_params
from tests.dicom_factory import identity, write_dicom
from tests.leakscan import planted_identifiers, scan_for_identifiers
from tests.tiny_pipeline import (
    CLASSES,
    SIZE,
    make_store,
    project_params,
    register_tiny_champion,
    tiny_config,
)

SIDE = 48
START = datetime(2026, 9, 1, tzinfo=UTC)
MANUFACTURERS = {"ScannerA": 0.7, "ScannerB": 0.3}  # the training data's mix
TRAIN_IMAGES = 400
DRAWS = 50  # repeated null draws for the false-alarm rate
BATCH = 100  # arrivals per draw


def scanner_image(rng: np.random.Generator, gamma: float = 1.0) -> np.ndarray:
    """(1, S, S) in [0, 1]: a bright field with two dark lung-like ellipses, jittered, noisy; `gamma`
    is the scanner's intensity curve (another vendor's processing maps the same anatomy differently)."""
    y, x = np.mgrid[0:SIDE, 0:SIDE] / SIDE
    image = np.full((SIDE, SIDE), 0.7 + 0.05 * rng.standard_normal())
    for centre in (0.3, 0.7):
        cx, cy = centre + 0.03 * rng.standard_normal(), 0.5 + 0.03 * rng.standard_normal()
        image[((x - cx) / 0.15) ** 2 + ((y - cy) / 0.3) ** 2 < 1] -= 0.4
    image += 0.03 * rng.standard_normal((SIDE, SIDE))
    return np.clip(image, 0, 1)[None] ** gamma


def training_profile(rng: np.random.Generator) -> dict[str, Any]:
    """The profile train stores for TRAIN_IMAGES DX chest images from the MANUFACTURERS mix."""
    names = rng.choice(list(MANUFACTURERS), TRAIN_IMAGES, p=list(MANUFACTURERS.values())).tolist()
    header = {
        "modality": ["DX"] * TRAIN_IMAGES, "body_part": ["CHEST"] * TRAIN_IMAGES,
        "photometric": ["MONOCHROME2"] * TRAIN_IMAGES, "manufacturer": names,
        "spacing_band": ["0.15-0.2"] * TRAIN_IMAGES,
    }  # fmt: skip
    return describe(header, [scanner_image(rng) for _ in range(TRAIN_IMAGES)])


VALIDATION_LOG_ODDS = np.random.default_rng(99).normal(-1.0, 1.5, 300)
REFERENCE_VALIDATION = {
    "abnormal_log_odds_quantiles": np.quantile(VALIDATION_LOG_ODDS, np.linspace(0, 1, 101)).tolist(),
    "n_images": 300,
    "flagged_share": float((VALIDATION_LOG_ODDS >= 0.0).mean()),
}


@pytest.fixture(scope="module")
def reference() -> Reference:
    return Reference(training_profile(np.random.default_rng(0)), REFERENCE_VALIDATION, 0.9, "normal")


def arrivals(
    rng: np.random.Generator,
    profile: dict[str, Any],
    n: int,
    *,
    gamma: float = 1.0,
    manufacturers: dict[str, float] = MANUFACTURERS,
    spacing_mm: float = 0.18,
) -> pd.DataFrame:
    """`n` logged arrivals (via the log's own entry builder), one per patient, spread over a month."""
    rows = []
    names = rng.choice(list(manufacturers), n, p=list(manufacturers.values()))
    scores = rng.normal(-1.0, 1.5, n)  # the model's view of them: like validation
    for k in range(n):
        image = scanner_image(rng, gamma)
        rows.append(
            entry(
                ids={"image_id": f"{k:016x}", "study_id": f"S-{k:012x}", "patient_id": f"P-{k:012x}"},
                arrived=START + timedelta(hours=k),
                meta=ImageMeta(
                    modality="DX",
                    body_part="CHEST",
                    photometric="MONOCHROME2",
                    manufacturer=str(names[k]),
                    spacing_row=spacing_mm,
                ),
                status="ok",
                statistics=tuple(image_statistics(image[None], profile)[0].tolist()),
                decision={
                    "abnormal_log_odds": scores[k],
                    "abnormal": scores[k] >= 0.0,
                    "predicted_label": "",
                },
                model_version="v1",
            )
        )
    return arrivals_frame(rows)


def monitor_settings(**changes: Any) -> MonitorParams:
    return settings("monitor", MonitorParams, **changes)


def test_arrivals_from_another_scanner_are_flagged_with_the_attributes_that_moved(
    reference: Reference,
) -> None:
    other = arrivals(
        np.random.default_rng(1), reference.profile, BATCH, gamma=0.6, manufacturers={"ScannerC": 1.0},
        spacing_mm=0.12,
    )  # fmt: skip
    findings = analyse(other, reference, monitor_settings(), labels=None, seed=0)
    drifted = set(findings.metrics["drifted"])
    assert {"manufacturer", "spacing_band", "mean"} <= drifted  # what moved
    assert not drifted & {"modality", "body_part", "photometric", "abnormal_log_odds"}  # what did not
    manufacturer = next(t for t in findings.metrics["drift"] if t["attribute"] == "manufacturer")
    assert manufacturer["method"] == "chi-square" and manufacturer["effect"] > 0.5
    assert "ScannerC 0% of training, 100% of arrivals" in manufacturer["moved"]
    assert any(line.startswith("drift in manufacturer (chi-square, Holm p=") for line in findings.warnings)


def test_arrivals_like_the_training_data_raise_few_false_alarms(reference: Reference) -> None:
    """False-alarm rate over DRAWS batches of BATCH arrivals drawn like the training data: measured 0/50
    (Holm at alpha 0.01 over the 9 tests a batch gets, plus min_effect 0.1; uncorrected, 4/50 batches
    had some p < 0.01)."""
    rng = np.random.default_rng(2)
    alarms = 0
    tested = set()
    for _ in range(DRAWS):
        findings = analyse(
            arrivals(rng, reference.profile, BATCH), reference, monitor_settings(), labels=None, seed=0
        )
        alarms += bool(findings.metrics["drifted"])
        tested |= {test["attribute"] for test in findings.metrics["drift"]}
    assert {"manufacturer", "mean", "edges", "abnormal_log_odds"} <= tested  # the tests did run
    assert alarms <= 1, f"{alarms} false alarms in {DRAWS} draws"


def test_holm_matches_the_textbook_step_down() -> None:
    # p sorted 0.01, 0.02, 0.03, 0.5 -> 4 x 0.01, 3 x 0.02, max(0.06, 2 x 0.03), max(0.06, 0.5)
    assert holm([0.03, 0.01, 0.5, 0.02]).tolist() == pytest.approx([0.06, 0.04, 0.5, 0.06])


def test_decay_is_caught_by_temporal_validation_with_intervals(reference: Reference) -> None:
    """Three months of 150 labelled arrivals each; in the third the relation between the images and
    their labels changed (a new protocol), so the champion's scores no longer separate the classes."""
    rng = np.random.default_rng(3)
    frames, labels = [], []
    for month in range(3):
        frame = arrivals(rng, reference.profile, 150)
        frame["arrived"] += pd.Timedelta(days=31 * month)
        frame["month"] = frame["arrived"].dt.strftime("%Y-%m")
        frame["image_id"] = [f"{month}-{k}" for k in range(len(frame))]
        positive = rng.random(len(frame)) < 0.4
        if month < 2:  # abnormal images score higher: AUC ~0.92
            frame["abnormal_log_odds"] = np.where(positive, 1.0, -1.5) + rng.normal(0, 1.0, len(frame))
        frame["abnormal"] = frame["abnormal_log_odds"] >= 0.0
        frames.append(frame)
        labels.append(
            pd.DataFrame({"image_id": frame["image_id"], "label": np.where(positive, "effusion", "normal")})
        )
    findings = analyse(
        pd.concat(frames, ignore_index=True), reference, monitor_settings(bootstrap_samples=300),
        labels=pd.concat(labels, ignore_index=True), seed=0,
    )  # fmt: skip
    by_month = findings.metrics["temporal_validation"]["month"]
    assert list(by_month) == ["2026-09", "2026-10", "2026-11"]
    for figures in by_month.values():
        assert figures["roc_auc_ci_low"] < figures["roc_auc"] < figures["roc_auc_ci_high"]
        assert figures["labelled"] == 150
    assert by_month["2026-09"]["roc_auc_ci_low"] > 0.85 and by_month["2026-10"]["roc_auc_ci_low"] > 0.85
    assert by_month["2026-11"]["roc_auc_ci_high"] < 0.85  # below test AUC 0.9 - margin 0.05
    decays = [line for line in findings.warnings if line.startswith("decay")]
    assert len(decays) == 1 and decays[0].startswith("decay in 2026-11: ROC-AUC")
    series = findings.series.set_index("month")
    assert series.loc["2026-11", "roc_auc_ci_high"] == by_month["2026-11"]["roc_auc_ci_high"]
    assert list(series["arrivals"]) == [150, 150, 150]
    # The retrain policy reads this evidence: decay triggers a run that says why, given enough labels.
    evidence = {"champion": "v1", **findings.metrics}

    def decide(
        champion: str = "v1", scheduled: bool = False, on_decay: bool = True, minimum: int = 400
    ) -> Any:
        return retrain_decision(
            evidence, champion=champion, scheduled=scheduled, on_drift=True, on_decay=on_decay,
            min_new_labelled=minimum,
        )  # fmt: skip

    decision = decide()
    assert decision.run and decision.reasons == ["decay in 2026-11", "450 new labelled arrivals"]
    assert decision.describe() == "retrain: decay in 2026-11; 450 new labelled arrivals"
    held = decide(scheduled=True, minimum=500)
    assert not held.run and held.reasons[0] == "scheduled"
    assert held.reasons[-1] == "only 450 new labelled arrivals (retrain.min_new_labelled 500)"
    off = decide(on_decay=False)
    assert not off.run and off.reasons == ["no schedule, drift or decay trigger"]
    stale = decide(champion="v2")
    assert not stale.run and "the monitor results are of v1, not the champion v2" in stale.reasons


def test_radflow_monitor_end_to_end_on_what_predict_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`radflow predict` fills the log; `radflow monitor --labels` reads it, warns (exit 0) about the
    out-of-distribution share and the useless champion's decay, and writes no identifier."""
    monkeypatch.setenv("RADFLOW_SALT", "test-salt-not-secret-salt-for-tests-32-bytes-long")
    params = project_params(tmp_path)
    params["monitor"].update(min_arrivals=2, min_labelled=2, bootstrap_samples=50)
    rng = np.random.default_rng(5)
    transform = parse_section(params, "preprocess", PreprocessParams).transform_settings(SIZE)
    images = [image_to_tensor(chest_image(SIZE, "normal", rng), transform) for _ in range(24)]
    header = {"modality": ["DX"] * 24, "body_part": ["CHEST"] * 24, "photometric": ["MONOCHROME2"] * 24}
    metrics = {
        "operating_point": OperatingPoint(CLASSES, "normal", 0.5).to_dict(), "roc_auc": 0.95,
        "validation": REFERENCE_VALIDATION,
    }  # fmt: skip
    config = {**tiny_config(), "data_profile": describe(header, images)}
    register_tiny_champion(params, tmp_path / "candidate", config=config, metrics=metrics)
    inputs = tmp_path / "inputs"
    for k in range(4):
        who = identity(patient_name=f"DOE^SECRET{k}", patient_id=f"SECRET-ID-{k}")
        write_dicom(
            inputs / f"SECRET-ID-{k}.dcm", chest_image(SIZE, "normal", rng), who=who, Manufacturer="ACME"
        )
    write_dicom(inputs / "ct.dcm", chest_image(SIZE, "normal", rng), modality="CT")
    write_params(tmp_path, params)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    predicted = runner.invoke(app, ["predict", "inputs", "--out", "p.csv"])
    assert predicted.exit_code == 0, predicted.output
    classified = pd.read_csv(tmp_path / "p.csv").query("status == 'ok'")
    labels = pd.DataFrame({"image_id": classified["image_id"], "label": ["normal", "effusion"] * 2})
    labels.to_csv(tmp_path / "labels.csv", index=False)

    result = runner.invoke(app, ["monitor", "--labels", "labels.csv"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    month = datetime.now(UTC).strftime("%Y-%m")
    assert any(line.startswith("warning: out-of-distribution share 20.0% of 5 arrivals") for line in lines)
    assert any(line.startswith(f"warning: decay in {month}: ROC-AUC 0.500") for line in lines)
    assert lines[-1].startswith("monitor: 5 arrivals since the champion, out of distribution 20.0%")
    written = json.loads((tmp_path / "monitor" / "metrics.json").read_text())
    assert written["champion"] == "v1" and written["temporal_validation"]["month"][month]["labelled"] == 4
    series = pd.read_csv(tmp_path / "monitor" / "timeseries.csv")
    assert series[["month", "arrivals", "classified", "labelled"]].values.tolist() == [[month, 5, 4, 4]]
    roots = [tmp_path / "monitor", tmp_path / "private" / "prediction_log"]
    assert scan_for_identifiers(roots, planted_identifiers(inputs) | {"SECRET-ID-1.dcm"}) == []

    (tmp_path / "bad.csv").write_text("patient,label\nx,normal\n")
    refused = runner.invoke(app, ["monitor", "--labels", "bad.csv"])
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert "labels bad.csv: columns ['patient', 'label']; valid: label and one of" in refused.output


def test_the_training_profile_counts_manufacturers_and_spacing_bands(tmp_path: Path) -> None:
    make_store(tmp_path)
    index = pd.read_csv(tmp_path / "index.csv")
    index["manufacturer"] = np.where(index["row"] % 4 == 0, "ScannerB", "ScannerA")
    index["spacing_row"] = np.where(index["row"] % 2 == 0, "0.143", "")  # unknown for half
    index.to_csv(tmp_path / "index.csv", index=False)
    profile = describe_store(tmp_path)
    train = index[index["split"] == "train"]
    assert profile["context"]["manufacturer"] == train["manufacturer"].value_counts().to_dict()
    assert profile["context"]["spacing_band"] == {"0.1-0.15": int((train["row"] % 2 == 0).sum())}
    assert all(len(values) == 101 for values in profile["quantiles"].values())


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("monitor.alpha=1.5", "monitor.alpha: invalid value 1.5; valid: a number > 0 and < 1"),
        ("monitor.min_arrivals=1", "monitor.min_arrivals: invalid value 1; valid: an integer >= 2"),
        ("monitor.log_max_mb=0", "monitor.log_max_mb: invalid value 0; valid: a number > 0"),
        ("retrain.min_new_labelled=-1", "retrain.min_new_labelled: invalid value -1; valid: an integer >= 0"),
    ],
)
def test_bad_monitor_and_policy_values_name_the_valid_range(override: str, message: str) -> None:
    params = repo_params(override)
    with pytest.raises(RadflowError, match=re.escape(message)):
        monitor_params(params)
        retrain_params(params)
