"""Write the evaluate stage's files: metrics.json, DVC plot data, PNGs, Grad-CAM, model card, HTML report.

Only pseudonymised ids (image_id, patient_id) and aggregate numbers are written: nothing here ever sees
a source path or a DICOM header.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from tasks.common.atomic import atomic_path, write_json, write_text
from tasks.common.operating import log_probabilities
from tasks.common.record import DETAIL_FILE, METRICS_FILE, split_record
from tasks.common.scoring import TensorStore
from tasks.evaluate import plots
from tasks.evaluate.gradcam import gradcam_map, pick_cases, save_overlay
from tasks.evaluate.report import card_sections, model_card, report_html

if TYPE_CHECKING:
    from tasks.evaluate.evaluation import Evaluation
    from tasks.evaluate.params import EvaluateParams


def test_predictions(evaluation: Evaluation) -> pd.DataFrame:
    """One row per test image: store row, pseudonymised ids, true label index, per-class logits (float64,
    what promote re-reads) and probabilities, the abnormal log-odds with the threshold's decision, and
    the argmax class."""
    frame = evaluation.test[["row", "image_id", "patient_id", "label_index"]].reset_index(drop=True)
    probs = np.exp(log_probabilities(evaluation.logits))
    for k, name in enumerate(evaluation.classes):
        frame[f"logit_{name}"] = evaluation.logits[:, k]
    for k, name in enumerate(evaluation.classes):
        frame[f"prob_{name}"] = probs[:, k]
    score, flagged, _ = evaluation.operating.decide(evaluation.logits)
    frame["abnormal_log_odds"] = score
    frame["abnormal"] = flagged.astype(int)
    frame["predicted_index"] = evaluation.logits.argmax(axis=1)
    return frame


def write_gradcams(
    folder: Path,
    evaluation: Evaluation,
    store: TensorStore,
    model: torch.nn.Module,
    config: dict,
    per_kind: int,
    seed: int,
) -> list[dict[str, str]]:
    """Overlays for correct and wrong test cases per true class; returns their captions for the report."""
    predicted = evaluation.logits.argmax(axis=1)
    confidence = np.exp(log_probabilities(evaluation.logits).max(axis=1))
    rows = evaluation.test["row"].to_numpy()
    image_ids = evaluation.test["image_id"].to_numpy()
    shown = []
    for position, kind in pick_cases(evaluation.labels, predicted, len(evaluation.classes), per_kind, seed):
        image = store.images[rows[position]]  # (1, S, S) float16 in [0, 1]
        true_name = evaluation.classes[evaluation.labels[position]]
        predicted_name = evaluation.classes[predicted[position]]
        heat = gradcam_map(model, config, image, int(predicted[position]))
        name = f"{true_name}_{kind}_{image_ids[position]}.png"
        title = f"true {true_name} / predicted {predicted_name}\n(p={confidence[position]:.2f})"
        save_overlay(folder / name, image, heat, title)
        shown.append({"file": name, "caption": title.replace("\n", " "), "kind": kind, "true": true_name})
    return shown


def write_outputs(
    folder: Path,
    evaluation: Evaluation,
    *,
    store: TensorStore,
    model: torch.nn.Module,
    config: dict,
    settings: EvaluateParams,
    seed: int,
) -> None:
    """Every evaluate output under `folder` (= paths.evaluation), each file written atomically."""
    report = folder / "report"
    classes, labels, logits = evaluation.classes, evaluation.labels, evaluation.logits
    score, _, _ = evaluation.operating.decide(logits)
    is_abnormal = labels != evaluation.negative_index
    headline, detail = split_record(evaluation.metrics)
    write_json(folder / METRICS_FILE, headline)
    write_json(folder / DETAIL_FILE, detail)
    plots.write_dvc_plots(
        folder / "plots",
        classes=classes,
        labels=labels,
        logits=logits,
        score=score,
        is_abnormal=is_abnormal,
        reliability=evaluation.reliability,
    )
    operating = {
        "is_abnormal": is_abnormal,
        "score": score,
        "sensitivity": evaluation.metrics["sensitivity"] or 0.0,
        "specificity": evaluation.metrics["specificity"] or 0.0,
    }
    plots.plot_roc(report / "roc.png", classes, labels, logits, operating)
    plots.plot_pr(report / "pr.png", classes, labels, logits)
    plots.plot_confusion(report / "confusion.png", classes, evaluation.confusion)
    plots.plot_calibration(report / "calibration.png", evaluation.reliability)
    with atomic_path(report / "test_predictions.csv") as tmp:
        test_predictions(evaluation).to_csv(tmp, index=False)
    shutil.rmtree(report / "gradcam", ignore_errors=True)  # no stale overlays from an earlier run
    gradcams = write_gradcams(
        report / "gradcam", evaluation, store, model, config, settings.gradcam_per_kind, seed
    )
    sections = card_sections(evaluation, store=store, config=config, settings=settings)
    write_text(report / "model_card.md", model_card(sections))
    write_text(
        report / "report.html", report_html(sections, evaluation=evaluation, folder=report, gradcams=gradcams)
    )
