"""Classify new DICOM/NIfTI/image files with a registered model, through the training-time code paths.

Files are decoded by ingest's `decode_path` and transformed by preprocess's `image_to_tensor`, so a
prediction sees exactly what training saw. The model comes from the registry, verified by checksum,
and so does its operating point: the abnormal-vs-negative decision is made exactly as evaluate made
it (tasks.common.operating), at the threshold registered with the model's metrics.
The output is the user's own file: it names the source paths they passed, next to pseudonymised ids.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import models
from models.registry import Registry
from tasks.common.atomic import atomic_path, write_json
from tasks.common.errors import RadflowError
from tasks.common.operating import OperatingPoint, from_record, log_probabilities
from tasks.common.params import parse_section
from tasks.common.paths import project_paths
from tasks.common.scoring import predict_logits
from tasks.evaluate.gradcam import gradcam_map, save_overlay
from tasks.ingest.decode import decode_path, image_id, read_source
from tasks.ingest.pseudonym import load_salt, pseudonym
from tasks.ingest.settings import IngestSettings, load_settings
from tasks.preprocess.stage import PreprocessParams
from tasks.preprocess.transform import TransformSettings, image_to_tensor
from tasks.promote.gate import PromoteParams

OUTPUT_SUFFIXES = (".csv", ".json")


def expand(paths: list[Path]) -> list[Path]:
    """Files given directly, plus every file under given folders (sorted, hidden files skipped)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            files.append(path)
        else:
            raise RadflowError(f"no such file or folder: {path}")
    if not files:
        raise RadflowError(f"no files found under {[str(p) for p in paths]}")
    return files


def decode_all(
    files: list[Path], ingest: IngestSettings, transform: TransformSettings, salt: bytes
) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """One record per decoded 2D image (and one per unusable file, with its reason) and their tensors.

    Ids are made as ingest makes them: image id from content hash + frame, patient pseudonym salted.
    """
    records: list[dict[str, Any]] = []
    tensors: list[np.ndarray] = []
    for file in files:
        try:
            content, data = read_source(file, ingest)
            decoded = decode_path(file, ingest, data)
        except RadflowError as error:
            records.append({"source_path": str(file), "status": f"skipped: {error}"})
            continue
        for image in decoded:
            records.append(
                {
                    "source_path": str(file),
                    "frame": image.frame,
                    "image_id": image_id(content, image.frame),
                    "patient_id": pseudonym("P", image.keys.patient or f"file:{content}", salt),
                    "status": "ok",
                }
            )
            tensors.append(image_to_tensor(image.pixels, transform))  # (1, S, S) float16
    return records, tensors


def predict_files(
    paths: list[Path], *, params: dict[str, Any], model: str, out: Path, gradcam_dir: Path | None
) -> pd.DataFrame:
    """Write per-class probabilities and the predicted label for every image under `paths` to `out`."""
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise RadflowError(
            f"--out {out}: unknown format {out.suffix!r}; valid suffixes: {list(OUTPUT_SUFFIXES)}"
        )
    project = project_paths(params)
    batch_size = parse_section(params, "promote", PromoteParams).batch_size
    registered = Registry(project.registry).load(model)  # refuses a version whose checksums do not match
    network, config = models.load_model(registered.path)
    preprocess = parse_section(params, "preprocess", PreprocessParams)
    # The model's own input size wins over params.yaml: it is what the weights were trained on.
    transform = TransformSettings(
        int(config["image_size"]), preprocess.lower_percentile, preprocess.upper_percentile
    )
    ingest = load_settings(params)
    salt = load_salt(ingest.salt_env, project.private)
    records, tensors = decode_all(expand(paths), ingest, transform, salt)
    classes = list(config["classes"])
    frame = pd.DataFrame(records, columns=["source_path", "frame", "image_id", "patient_id", "status"])
    frame["frame"] = frame["frame"].astype("Int64")  # integer frames; empty for skipped files
    ok = (frame["status"] == "ok").to_numpy()
    logits = np.full((len(frame), len(classes)), np.nan)
    if tensors:
        images = np.stack(tensors)  # (N, 1, S, S)
        logits[ok] = predict_logits(network, config, images, np.arange(len(images)), batch_size)
        if gradcam_dir is not None:
            for position, image in enumerate(images):
                predicted = int(logits[ok][position].argmax())
                heat = gradcam_map(network, config, image, predicted)
                image_id = frame.loc[ok, "image_id"].iloc[position]
                save_overlay(gradcam_dir / f"{image_id}.png", image, heat, f"predicted {classes[predicted]}")
    operating = from_record(registered.metrics, classes, params["evaluate"]["negative_class"])
    frame = frame.join(decision_columns(logits, ok, classes, operating))
    frame["model_version"] = registered.version
    if out.suffix.lower() == ".json":
        write_json(out, json.loads(frame.to_json(orient="records")))
    else:
        with atomic_path(out) as tmp:
            frame.to_csv(tmp, index=False)
    rule = (
        f"abnormal vs {operating.negative_class} at log-odds >= {operating.threshold:.6g}"
        if operating is not None
        else "no registered operating threshold: most probable class only"
    )
    print(
        f"predict: model v{registered.version} ({rule}): {int(ok.sum())} image(s) classified, "
        f"{int((~ok).sum())} file(s) skipped -> {out}"
    )
    return frame


def decision_columns(
    logits: np.ndarray, ok: np.ndarray, classes: list[str], operating: OperatingPoint | None
) -> pd.DataFrame:
    """Per-class probabilities, the abnormal log-odds, the thresholded decision and the label it gives.

    `predicted_label` is the operating point's decision (the negative class, or the most probable
    abnormal class when flagged), as evaluate scored it; without a registered threshold it is the most
    probable class and `abnormal` stays empty. Rows of skipped files stay empty.
    """
    columns = pd.DataFrame(index=range(len(logits)))
    probs = np.full(logits.shape, np.nan)
    probs[ok] = np.exp(log_probabilities(logits[ok]))
    for k, name in enumerate(classes):
        columns[f"prob_{name}"] = probs[:, k]
    labels = np.full(len(logits), "", dtype=object)
    columns["abnormal_log_odds"] = np.nan
    columns["abnormal"] = pd.array([pd.NA] * len(logits), dtype="boolean")
    if operating is None:
        labels[ok] = np.asarray(classes, dtype=object)[logits[ok].argmax(axis=1)]
    elif ok.any():
        score, flagged, decided = operating.decide(logits[ok])
        columns.loc[ok, "abnormal_log_odds"] = score
        columns.loc[ok, "abnormal"] = flagged
        labels[ok] = np.asarray(classes, dtype=object)[decided]
    columns["predicted_label"] = labels
    columns["threshold"] = np.nan if operating is None else operating.threshold
    return columns
