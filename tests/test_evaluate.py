"""Evaluate: metrics against hand-computed values, a validation-only threshold, the operating point on
the ROC curve for an over-confident model, the baseline beside the model, and the stage's outputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

import tasks.evaluate.evaluation as evaluation
import tasks.evaluate.stage as evaluate
from flows.artifacts import warnings_markdown
from tasks.common.metrics import (
    binary_auc,
    choose_threshold,
    confusion,
    expected_calibration_error,
    headline_metrics,
    patient_bootstrap,
    per_class_metrics,
    roc_auc,
)
from tasks.common.operating import abnormal_log_odds
from tasks.common.params import parse_section
from tasks.common.record import HEADLINE_KEYS
from tasks.common.scoring import TensorStore
from tasks.evaluate.checks import training_reasons
from tasks.evaluate.params import EvaluateParams
from tasks.evaluate.report import card_sections, model_card
from tasks.evaluate.training import TrainingRecord, read_training_record
from tests.tiny_pipeline import make_store, project_params, save_candidate, train_tiny

# Binary example: labels 0,0,1,1 with p(class 1) = 0.1, 0.4, 0.35, 0.8. Log-probabilities are logits.
LABELS = np.array([0, 0, 1, 1])
P1 = np.array([0.1, 0.4, 0.35, 0.8])
PROBS = np.stack([1 - P1, P1], axis=1)
LOGITS = np.log(PROBS)
NO_RECORD = TrainingRecord(summary=None, final_loss=None, chance_loss=np.log(2))


def log_odds(p: float) -> float:
    return float(np.log(p / (1 - p)))


def test_binary_metrics_match_hand_computation() -> None:
    m = headline_metrics(LABELS, LOGITS, negative_index=0, threshold=log_odds(0.5), n_bins=2)
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
    assert expected_calibration_error(LABELS, LOGITS, 2) == pytest.approx(0.0125)


def test_per_class_and_confusion_match_hand_computation() -> None:
    per_class = per_class_metrics(LABELS, LOGITS, ["normal", "abnormal"])
    assert per_class["normal"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert per_class["abnormal"] == pytest.approx(
        {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2}
    )
    assert confusion(LABELS, LOGITS, 2).tolist() == [[2, 0], [1, 1]]


def test_multiclass_auc_is_one_vs_rest_macro() -> None:
    labels = np.array([0, 1, 2, 0, 1, 2])
    probs = np.array(
        [
            [0.6, 0.3, 0.1],
            [0.2, 0.5, 0.3],
            [0.1, 0.2, 0.7],
            [0.3, 0.4, 0.3],
            [0.5, 0.29, 0.21],
            [0.2, 0.2, 0.6],
        ]
    )
    # Class 0 vs rest: scores pos .6 .3 vs neg .2 .1 .5 .2 -> pairs won 4 + 3 = 7 of 8.
    # Class 1 vs rest: pos .5 .29 vs neg .3 .2 .4 .2 -> 4 + 2 = 6 of 8.
    # Class 2 vs rest: pos .7 .6 vs neg .1 .3 .3 .21 -> 8 of 8.
    assert roc_auc(labels, np.log(probs)) == pytest.approx((7 / 8 + 6 / 8 + 1.0) / 3)
    # Abnormal = not class 0: log-odds of 1 - p0 against p0, threshold at 1 - p0 = .6.
    m = headline_metrics(labels, np.log(probs), negative_index=0, threshold=log_odds(0.6), n_bins=10)
    # 1 - p0 for abnormal rows (.8 .9 .5 .8) >= .6: 3 of 4; normal rows (.4 .7): one below -> spec 1/2.
    assert m["sensitivity"] == pytest.approx(0.75)
    assert m["specificity"] == pytest.approx(0.5)


def test_rank_auc_equals_scikit_learn_with_ties() -> None:
    rng = np.random.default_rng(0)
    positive = rng.integers(0, 2, 200).astype(bool)
    score = np.round(rng.normal(size=200) + positive, 1)  # many ties
    assert binary_auc(positive, score) == pytest.approx(roc_auc_score(positive, score), abs=1e-12)


def test_threshold_rules() -> None:
    is_abnormal = np.array([False, False, False, True, True, True, True])
    score = np.array([0.1, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9])
    # Youden: threshold .7 gives tpr 3/4, fpr 0 (J=.75); .4 gives tpr 1, fpr 1/3 (J=.667).
    assert choose_threshold(is_abnormal, score, "youden", 0.9) == pytest.approx(0.7)
    # Target sensitivity .9 needs all four positives: the highest such threshold is .4.
    assert choose_threshold(is_abnormal, score, "target_sensitivity", 0.9) == pytest.approx(0.4)


def test_operating_point_of_an_over_confident_model_lies_on_its_roc_curve() -> None:
    """Logits around +-40: 1 - p(negative) rounds to exactly 0 or 1 for almost every image, which made
    the reported (sensitivity, specificity) disagree with the curve; the log-odds keep them apart."""
    rng = np.random.default_rng(3)
    labels = np.repeat([0, 1], 60)  # 0 = negative
    # Abnormal images mostly near +40, negatives near -40, with overlap so the curve is not perfect.
    gap = np.where(labels == 1, 40.0, -40.0) + rng.normal(0, 6, len(labels))
    gap[rng.choice(len(labels), 15, replace=False)] *= -1
    logits = np.stack([-gap / 2, gap / 2], axis=1)  # (N, 2)
    old_score = 1.0 - np.exp(logits[:, 0] - np.logaddexp(logits[:, 0], logits[:, 1]))
    score = abnormal_log_odds(logits, 0)
    assert len(np.unique(old_score)) < len(labels) / 2 < len(np.unique(score))  # the old score collapsed
    for threshold in (*np.quantile(score, [0.1, 0.3, 0.5, 0.7, 0.9]), 35.0, -35.0):
        m = headline_metrics(labels, logits, negative_index=0, threshold=float(threshold), n_bins=10)
        fpr, tpr, _ = roc_curve(labels == 1, score, drop_intermediate=False)
        points = set(zip(np.round(fpr, 12), np.round(tpr, 12), strict=True))
        assert (round(1 - m["specificity"], 12), round(m["sensitivity"], 12)) in points
    assert roc_auc(labels, logits) == pytest.approx(roc_auc_score(labels, score))


def test_threshold_is_a_finite_score_even_when_flagging_nothing_is_best() -> None:
    is_abnormal = np.array([False, True, False, True])
    score = np.array([50.0, -50.0, 40.0, -40.0])  # perfectly inverted: nothing flagged is Youden-best
    threshold = choose_threshold(is_abnormal, score, "youden", 0.9)
    assert np.isfinite(threshold) and threshold > score.max()


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


def _evaluate(store: TensorStore, val: np.ndarray, test: np.ndarray, settings: EvaluateParams):
    """evaluate_scores on probabilities given as logits, with a know-nothing baseline."""
    flat = evaluation.Scores(val=np.zeros_like(val), test=np.zeros_like(test))
    return evaluation.evaluate_scores(
        store,
        evaluation.Scores(val=np.log(val), test=np.log(test)),
        flat,
        negative_class="normal",
        training=NO_RECORD,
        settings=settings,
        seed=0,
    )


def test_threshold_comes_from_validation_not_test(tmp_path: Path) -> None:
    settings = parse_section(project_params(tmp_path), "evaluate", EvaluateParams)
    # classes ["abnormal", "normal"]: negative class "normal" is index 1, abnormal score = p(abnormal).
    store = _store(val_labels=[1, 1, 0, 0], test_labels=[1, 1, 0, 0])
    val = np.array([[0.1, 0.9], [0.2, 0.8], [0.3, 0.7], [0.9, 0.1]])  # abnormal scores .3 and .9 -> cut .3
    test_a = np.array([[0.05, 0.95], [0.5, 0.5], [0.6, 0.4], [0.7, 0.3]])
    test_b = np.array([[0.9, 0.1], [0.8, 0.2], [0.95, 0.05], [0.99, 0.01]])
    result_a, result_b = _evaluate(store, val, test_a, settings), _evaluate(store, val, test_b, settings)
    assert result_a.operating.threshold == result_b.operating.threshold == pytest.approx(log_odds(0.3))
    assert result_a.metrics["threshold"] == pytest.approx(log_odds(0.3))
    # The monitor's reference for prediction drift: validation's log-odds percentiles, the share flagged.
    validation = result_a.metrics["validation"]
    quantiles = validation["abnormal_log_odds_quantiles"]
    assert len(quantiles) == 101 and quantiles[0] == pytest.approx(log_odds(0.1))
    assert quantiles[-1] == pytest.approx(log_odds(0.9))
    assert validation["flagged_share"] == 0.5  # .3 and .9 of the abnormal scores .1 .2 .3 .9
    # Changing validation moves the threshold.
    shifted = _evaluate(store, val * 0 + [0.6, 0.4], test_a, settings)
    assert shifted.operating.threshold != pytest.approx(log_odds(0.3))
    # Test: normal rows score .05 and .5 -> the .5 one is flagged (spec 1/2); both abnormal flagged.
    assert result_a.metrics["sensitivity"] == 1.0
    assert result_a.metrics["specificity"] == 0.5
    # The flat baseline is at chance: the model beats it, and both numbers are in the record.
    assert result_a.metrics["baseline_roc_auc"] == 0.5 and result_a.metrics["beats_baseline"]


def test_a_model_no_better_than_chance_or_the_baseline_is_flagged(tmp_path: Path) -> None:
    settings = parse_section(project_params(tmp_path), "evaluate", EvaluateParams)
    store = _store(val_labels=[1, 1, 0, 0], test_labels=[1, 1, 0, 0])
    coin = np.array([[0.6, 0.4], [0.4, 0.6], [0.6, 0.4], [0.4, 0.6]])  # AUC 0.5 on both splits
    result = _evaluate(store, coin, coin, settings)
    assert result.metrics["learned"] is False and not result.findings.learning.learned
    assert any("validation ROC-AUC 0.500 is near chance" in text for text in result.findings.warnings)
    assert any("test ROC-AUC 0.500 is near chance" in text for text in result.findings.warnings)
    assert any("no better than the simple baseline" in text for text in result.metrics["learning_warnings"])
    # Four images a split are far too few: said, separately from the learning verdict.
    assert any(
        "val split holds 2 negative and 2 abnormal" in text for text in result.metrics["data_warnings"]
    )


def test_an_unknown_baseline_comparison_reads_as_unknown_everywhere(tmp_path: Path) -> None:
    """A test split of one class has no ROC-AUC: whether the model beats the baseline is unknown (None),
    and the report, the model card and the flow's warnings say so rather than reading it as a pass."""
    settings = parse_section(project_params(tmp_path), "evaluate", evaluation.EvaluateParams)
    store = _store(val_labels=[1, 1, 0, 0], test_labels=[1, 1, 1, 1])  # test: only "normal" images
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8]])
    result = _evaluate(store, scores, scores, settings)
    assert (
        result.metrics["roc_auc"] is None and result.metrics["beats_baseline"] is None
    )  # NaN recorded as null
    assert result.findings.learning.beats_baseline is None
    said = "whether the model beats the simple baseline is unknown: test ROC-AUC unknown"
    assert any(said in text for text in result.metrics["learning_warnings"])
    config = {"image_size": 2, "architecture": {}, "train": {}}
    card = model_card(card_sections(result, store=store, config=config, settings=settings))
    assert card.index(said) < card.index("## Intended use")
    assert said in warnings_markdown(result.metrics)  # the Prefect artifact and the flow's Warning state
    # A known comparison is still a plain True / False.
    known = _store(val_labels=[1, 1, 0, 0], test_labels=[1, 1, 0, 0])
    right = np.array([[0.1, 0.9], [0.2, 0.8], [0.9, 0.1], [0.8, 0.2]])  # abnormal scored high: AUC 1
    assert _evaluate(known, right, right, settings).metrics["beats_baseline"] is True
    assert _evaluate(known, right, right[::-1], settings).metrics["beats_baseline"] is False  # AUC 0


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


def test_stage_writes_every_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = project_params(tmp_path)
    make_store(Path(params["paths"]["preprocessed"]))
    save_candidate(
        train_tiny(Path(params["paths"]["preprocessed"]), steps=15, seed=0), Path(params["paths"]["model"])
    )
    evaluate.main(params)
    out = Path(params["paths"]["evaluation"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == set(HEADLINE_KEYS)  # the one readable row `dvc metrics show` prints
    assert metrics["roc_auc_ci_low"] <= metrics["roc_auc"] <= metrics["roc_auc_ci_high"]
    assert 0 <= metrics["baseline_roc_auc"] <= 1 and isinstance(metrics["learned"], bool)
    detail = json.loads((out / "metrics_detail.json").read_text())
    for key in ("pr_auc", "accuracy", "balanced_accuracy", "ece", "operating_point", "validation"):
        assert key in detail
    assert set(detail["ci"]["baseline_roc_auc"]) != {None}
    assert detail["operating_point"]["negative_class"] == "normal"  # `auto` resolved
    assert detail["operating_point"]["threshold"] == metrics["threshold"]
    assert set(detail["per_class"]) == {"effusion", "normal", "opacity"}
    assert set(detail["subgroups"]["sex"]) == {"F", "M"}
    headline = capsys.readouterr().err
    assert "evaluate: test ROC-AUC" in headline and "simple baseline ROC-AUC" in headline
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
    assert len(predictions) == detail["n_test_images"]
    flagged = predictions["abnormal_log_odds"] >= metrics["threshold"]
    assert (flagged.astype(int) == predictions["abnormal"]).all()
    abnormal = predictions["label_index"] != 1  # "normal" is class 1
    assert flagged[abnormal].mean() == pytest.approx(metrics["sensitivity"])
    assert (~flagged[~abnormal]).mean() == pytest.approx(metrics["specificity"])
    roc = pd.read_csv(out / "plots" / "roc.csv")
    point = (1 - metrics["specificity"], metrics["sensitivity"])
    assert (np.isclose(roc["fpr"], point[0]) & np.isclose(roc["tpr"], point[1])).any()
    html = (report / "report.html").read_text()
    # Self-contained: every image is inline, nothing is fetched.
    assert re.findall(r'src="(?!data:image/png;base64,)', html) == []
    assert html.count("data:image/png;base64,") >= 4 + len(list((report / "gradcam").glob("*.png")))
    card = (report / "model_card.md").read_text()
    assert "Known limitations" in card and "abnormal" in card and "Subgroups" in card
    assert "Model against the simple baseline" in card and "simple baseline ROC-AUC" in html
    # The tiny store's validation split holds 4 normal images: the card says the threshold is shaky.
    assert "WARNING" in card and "cannot be trusted" in card and 'class="alarm"' in html


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
    assert card.index("## WARNING") < card.index("## Intended use")
    assert "6 images had no patient id" in card and "test metrics may be optimistic" in card
    assert "from data set folders" in card and "Note: the data set has no test folder." in card
    html = (report / "report.html").read_text()
    assert html.index("6 images had no patient id") < html.index("<h2>Plots</h2>")


def test_training_record_prefers_the_train_sides_summary(tmp_path: Path) -> None:
    live = tmp_path / "live"
    live.mkdir()
    (live / "metrics.json").write_text(json.dumps({"train_loss": 0.69, "step": 29}))
    labels = np.array([0] * 90 + [1] * 10)
    # No summary: DVCLive's final loss against chance, ln 2 for a class-balanced loss ...
    record = read_training_record({"train": {"class_balance": "weighted_loss"}}, live, labels, 2)
    assert record.chance_loss == pytest.approx(np.log(2)) and record.final_loss == pytest.approx(0.69)
    assert "did not fall below chance: final 0.690 vs 0.693" in training_reasons(record, 0.9)[0]
    # ... and the entropy of the class frequencies for an unweighted one (0.325 at 10% prevalence).
    unweighted = read_training_record({"train": {"class_balance": "none"}}, live, labels, 2)
    assert unweighted.chance_loss == pytest.approx(0.325, abs=1e-3)
    # The train side's own verdict wins when the model carries one.
    summary = {"learned": False, "reason": "final loss 0.69 = ln 2 after 30 epochs"}
    judged = read_training_record({"training_summary": summary}, live, labels, 2)
    assert training_reasons(judged, 0.9) == ["training did not learn: final loss 0.69 = ln 2 after 30 epochs"]
    assert training_reasons(read_training_record({}, tmp_path / "none", labels, 2), 0.9) == []
