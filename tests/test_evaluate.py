"""Evaluate: metrics against hand-computed values, a validation-only threshold, and the stage's outputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tasks.evaluate.evaluation as evaluation
import tasks.evaluate.stage as evaluate
from tasks.common.errors import RadflowError
from tasks.common.metrics import (
    choose_threshold,
    confusion,
    expected_calibration_error,
    headline_metrics,
    patient_bootstrap,
    per_class_metrics,
    roc_auc,
)
from tasks.common.params import parse_section
from tasks.common.scoring import TensorStore
from tests.tiny_pipeline import make_store, project_params, save_candidate, train_tiny

# Binary example: labels 0,0,1,1 with p(class 1) = 0.1, 0.4, 0.35, 0.8.
LABELS = np.array([0, 0, 1, 1])
P1 = np.array([0.1, 0.4, 0.35, 0.8])
PROBS = np.stack([1 - P1, P1], axis=1)


def test_binary_metrics_match_hand_computation() -> None:
    m = headline_metrics(LABELS, PROBS, negative_index=0, threshold=0.5, n_bins=2)
    # ROC-AUC: of the 4 (pos, neg) pairs, 3 are ranked correctly -> 0.75.
    assert m["roc_auc"] == pytest.approx(0.75)
    # AP of class 1: ranking 0.8(+) 0.4(-) 0.35(+) 0.1(-): precision 1 at recall .5, 2/3 at recall 1;
    # class 0 (p0 = .9 .6 .65 .2): .9(+) .65(-) .6(+) .2(-), the same -> macro .5 + .5*2/3.
    assert m["pr_auc"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    # argmax predictions 0,0,0,1: 3 of 4 right; recalls 1.0 and 0.5.
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["balanced_accuracy"] == pytest.approx(0.75)
    # Threshold 0.5 flags only 0.8: sensitivity 1/2, specificity 2/2.
    assert m["sensitivity"] == pytest.approx(0.5)
    assert m["specificity"] == pytest.approx(1.0)
    # Confidences .9 .6 .65 .8 all in bin (.5, 1]: mean .7375, accuracy .75 -> ECE .0125.
    assert m["ece"] == pytest.approx(0.0125)
    assert expected_calibration_error(LABELS, PROBS, 2) == pytest.approx(0.0125)


def test_per_class_and_confusion_match_hand_computation() -> None:
    per_class = per_class_metrics(LABELS, PROBS, ["normal", "abnormal"])
    assert per_class["normal"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert per_class["abnormal"] == pytest.approx(
        {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2}
    )
    assert confusion(LABELS, PROBS, 2).tolist() == [[2, 0], [1, 1]]


def test_multiclass_auc_is_one_vs_rest_macro() -> None:
    labels = np.array([0, 1, 2, 0, 1, 2])
    probs = np.array(
        [[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7], [0.3, 0.4, 0.3], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6]]
    )
    # Class 0 vs rest: scores pos .6 .3 vs neg .2 .1 .5 .2 -> pairs won 4 + 3 = 7 of 8.
    # Class 1 vs rest: pos .5 .3 vs neg .3 .2 .4 .2 -> 4 + (2 + .5 tie) = 6.5 of 8.
    # Class 2 vs rest: pos .7 .6 vs neg .1 .3 .3 .2 -> 8 of 8.
    assert roc_auc(labels, probs) == pytest.approx((7 / 8 + 6.5 / 8 + 1.0) / 3)
    # Abnormal = not class 0: score 1 - p0.
    m = headline_metrics(labels, probs, negative_index=0, threshold=0.6, n_bins=10)
    # 1 - p0 for abnormal rows (.8 .9 .5 .8) >= .6: 3 of 4; normal rows (.4 .7): one below -> spec 1/2.
    assert m["sensitivity"] == pytest.approx(0.75)
    assert m["specificity"] == pytest.approx(0.5)


def test_threshold_rules() -> None:
    is_abnormal = np.array([False, False, False, True, True, True, True])
    score = np.array([0.1, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9])
    # Youden: threshold .7 gives tpr 3/4, fpr 0 (J=.75); .4 gives tpr 1, fpr 1/3 (J=.667).
    assert choose_threshold(is_abnormal, score, "youden", 0.9) == pytest.approx(0.7)
    # Target sensitivity .9 needs all four positives: the highest such threshold is .4.
    assert choose_threshold(is_abnormal, score, "target_sensitivity", 0.9) == pytest.approx(0.4)


def _store(val_labels: list[int], test_labels: list[int]) -> TensorStore:
    rows = [("val", label) for label in val_labels] + [("test", label) for label in test_labels]
    index = pd.DataFrame(
        {
            "row": range(len(rows)),
            "image_id": [f"{i:016x}" for i in range(len(rows))],
            "patient_id": [f"P-{i:012x}" for i in range(len(rows))],
            "split": [split for split, _ in rows],
            "label_index": [label for _, label in rows],
            "label": [["normal", "abnormal"][label] for _, label in rows],
            "sex": ["F", "M"] * (len(rows) // 2),
        }
    )
    return TensorStore(np.zeros((len(rows), 1, 2, 2), np.float16), index, ["abnormal", "normal"])


def test_threshold_comes_from_validation_not_test(tmp_path: Path) -> None:
    settings = parse_section(project_params(tmp_path), "evaluate", evaluation.EvaluateParams)
    # classes ["abnormal", "normal"]: negative class "normal" is index 1, abnormal score = p(abnormal).
    store = _store(val_labels=[1, 1, 0, 0], test_labels=[1, 1, 0, 0])
    val = np.array([[0.1, 0.9], [0.2, 0.8], [0.3, 0.7], [0.9, 0.1]])  # abnormal scores .3 and .9 -> cut .3
    test_a = np.array([[0.05, 0.95], [0.5, 0.5], [0.6, 0.4], [0.7, 0.3]])
    test_b = np.array([[0.9, 0.1], [0.8, 0.2], [0.95, 0.05], [0.99, 0.01]])
    result_a = evaluation.evaluate_probabilities(store, val, test_a, settings, seed=0)
    result_b = evaluation.evaluate_probabilities(store, val, test_b, settings, seed=0)
    assert result_a.threshold == result_b.threshold == pytest.approx(0.3)
    # Changing validation moves the threshold.
    shifted = evaluation.evaluate_probabilities(store, val * 0 + [0.6, 0.4], test_a, settings, seed=0)
    assert shifted.threshold != pytest.approx(0.3)
    # Test: normal rows score .05 and .5 -> the .5 one is flagged (spec 1/2); both abnormal flagged.
    assert result_a.metrics["sensitivity"] == 1.0
    assert result_a.metrics["specificity"] == 0.5


def test_negative_class_must_be_a_class(tmp_path: Path) -> None:
    params = project_params(tmp_path, evaluate__negative_class="healthy")
    settings = parse_section(params, "evaluate", evaluation.EvaluateParams)
    store = _store([0, 1], [0, 1])
    with pytest.raises(RadflowError, match=r"valid choices: \['abnormal', 'normal'\]"):
        evaluation.evaluate_probabilities(store, np.full((2, 2), 0.5), np.full((2, 2), 0.5), settings, seed=0)


def test_bootstrap_resamples_whole_patients() -> None:
    patients = np.array(["a", "a", "b", "c", "c", "c"])
    seen: list[np.ndarray] = []

    def statistic(rows: np.ndarray) -> dict[str, float]:
        seen.append(rows)
        return {"n": float(len(rows))}

    intervals = patient_bootstrap(patients, statistic, samples=50, seed=1)
    for rows in seen:
        for patient in set(patients[rows]):  # every drawn patient brings all of their images
            assert (patients[rows] == patient).sum() % (patients == patient).sum() == 0
    low, high = intervals["n"]
    assert low is not None and high is not None and 3 <= low <= high <= 9


def test_stage_writes_every_output(tmp_path: Path) -> None:
    params = project_params(tmp_path)
    make_store(Path(params["paths"]["preprocessed"]))
    save_candidate(
        train_tiny(Path(params["paths"]["preprocessed"]), steps=15, seed=0), Path(params["paths"]["model"])
    )
    evaluate.main(params)
    out = Path(params["paths"]["evaluation"])
    metrics = json.loads((out / "metrics.json").read_text())
    for key in (
        "roc_auc",
        "pr_auc",
        "accuracy",
        "balanced_accuracy",
        "sensitivity",
        "specificity",
        "ece",
        "threshold",
    ):
        assert key in metrics
    assert set(metrics["ci"]["roc_auc"]) != {None}
    assert set(metrics["per_class"]) == {"effusion", "normal", "opacity"}
    assert set(metrics["subgroups"]["sex"]) == {"F", "M"}
    for name in ("roc.csv", "pr.csv", "confusion.csv", "calibration.csv"):
        assert (out / "plots" / name).stat().st_size > 0
    report = out / "report"
    for name in (
        "roc.png",
        "pr.png",
        "confusion.png",
        "calibration.png",
        "model_card.md",
        "test_predictions.csv",
    ):
        assert (report / name).is_file(), name
    assert list((report / "gradcam").glob("*.png"))
    predictions = pd.read_csv(report / "test_predictions.csv")
    assert list(predictions.columns[:4]) == ["row", "image_id", "patient_id", "label_index"]
    assert len(predictions) == metrics["n_test_images"]
    html = (report / "report.html").read_text()
    # Self-contained: every image is inline, nothing is fetched.
    assert re.findall(r'src="(?!data:image/png;base64,)', html) == []
    assert html.count("data:image/png;base64,") >= 4 + len(list((report / "gradcam").glob("*.png")))
    card = (report / "model_card.md").read_text()
    assert "Known limitations" in card and "abnormal" in card and "Subgroups" in card


def test_report_and_model_card_say_when_patients_were_not_recognised(tmp_path: Path) -> None:
    params = project_params(tmp_path)
    store = Path(params["paths"]["preprocessed"])
    make_store(store)
    facts = json.loads((store / "classes.json").read_text())
    facts.update(
        patients_recognised=False,
        images_without_patient=6,
        split_source="data set folders",
        split_notes=["6 of 48 images have no patient id", "the data set has no test folder"],
    )
    (store / "classes.json").write_text(json.dumps(facts))
    save_candidate(train_tiny(store, steps=2, seed=0), Path(params["paths"]["model"]))
    evaluate.main(params)
    report = Path(params["paths"]["evaluation"]) / "report"
    card = (report / "model_card.md").read_text()
    assert card.index("## Warning: patients not recognised") < card.index("## Intended use")
    assert "6 images had no patient id" in card and "test metrics may be optimistic" in card
    assert "from data set folders" in card and "Note: the data set has no test folder." in card
    html = (report / "report.html").read_text()
    assert html.index("Warning: patients not recognised") < html.index("<h2>Plots</h2>")
