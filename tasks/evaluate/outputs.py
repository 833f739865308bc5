"""Write the evaluate stage's files: metrics.json, DVC plot data, PNGs, Grad-CAM, model card, HTML report.

Only pseudonymised ids (image_id, patient_id) and aggregate numbers are written: nothing here ever sees
a source path or a DICOM header.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch

from tasks.common.atomic import atomic_path, write_json, write_text
from tasks.common.metrics import abnormal_score
from tasks.common.scoring import TensorStore
from tasks.evaluate import plots
from tasks.evaluate.gradcam import gradcam_map, pick_cases, save_overlay
from tasks.evaluate.report import card_sections, model_card, report_html

if TYPE_CHECKING:
    from tasks.evaluate.evaluation import EvaluateParams, Evaluation


def test_predictions(evaluation: Evaluation) -> pd.DataFrame:
    """One row per test image: store row, pseudonymised ids, true label index, per-class probabilities."""
    frame = evaluation.test[["row", "image_id", "patient_id", "label_index"]].reset_index(drop=True)
    for k, name in enumerate(evaluation.classes):
        frame[f"prob_{name}"] = evaluation.probs[:, k]
    frame["predicted_index"] = evaluation.probs.argmax(axis=1)
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
    predicted = evaluation.probs.argmax(axis=1)
    rows = evaluation.test["row"].to_numpy()
    image_ids = evaluation.test["image_id"].to_numpy()
    shown = []
    for position, kind in pick_cases(evaluation.labels, predicted, len(evaluation.classes), per_kind, seed):
        image = store.images[rows[position]]  # (1, S, S) float16 in [0, 1]
        true_name = evaluation.classes[evaluation.labels[position]]
        predicted_name = evaluation.classes[predicted[position]]
        heat = gradcam_map(model, config, image, int(predicted[position]))
        name = f"{true_name}_{kind}_{image_ids[position]}.png"
        title = f"true {true_name} / predicted {predicted_name}\n(p={evaluation.probs[position].max():.2f})"
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
    classes, labels, probs = evaluation.classes, evaluation.labels, evaluation.probs
    score = abnormal_score(probs, evaluation.negative_index)
    is_abnormal = labels != evaluation.negative_index
    write_json(folder / "metrics.json", evaluation.metrics)
    plots.write_dvc_plots(
        folder / "plots",
        classes=classes,
        labels=labels,
        probs=probs,
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
    plots.plot_roc(report / "roc.png", classes, labels, probs, operating)
    plots.plot_pr(report / "pr.png", classes, labels, probs)
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
