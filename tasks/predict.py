"""Classify new DICOM/NIfTI/image files with a registered model, through the training-time code paths.

Files are decoded by ingest's decoders, in isolated workers (`tasks.ingest.runner.decode_files`: a
file that crashes a decoder costs that file only), and transformed by preprocess's `image_to_tensor`,
so a prediction sees exactly what training saw. The model comes from the registry, verified by checksum,
or from a model folder fetched with `dvc artifacts get` (models.registry.source); so does its operating
point: the abnormal-vs-negative decision is made exactly as evaluate made it (tasks.common.operating),
at the threshold registered with the model's metrics.
An input unlike the training data (header attributes or image statistics against the profile the
train stage stored in config.json) is reported `out_of_distribution` with the reason, not classified.
The output is the user's own file: it names the source paths they passed (and Grad-CAM files are
named after them), next to pseudonymised ids. When no input could be classified, predict fails.
Every decoded image, classified or refused, is also appended to the prediction log the monitor reads
(tasks.monitor.log: pseudonymised ids, header attributes, statistics, decision; no path, no identifier).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import Field

import models
from models.inference import predict_logits
from models.registry import Registry
from models.registry.source import ModelSource, resolve_model
from tasks.common.atomic import atomic_path, write_json
from tasks.common.data_profile import HEADER, image_statistics, unlike_training
from tasks.common.errors import RadflowError
from tasks.common.operating import OperatingPoint, from_record, log_probabilities
from tasks.common.params import parse_section, section
from tasks.common.paths import printable_path, project_paths
from tasks.evaluate.gradcam import gradcam_map, save_overlay
from tasks.ingest.decode import image_id
from tasks.ingest.pseudonym import load_salt, pseudonym
from tasks.ingest.records import ImageMeta
from tasks.ingest.runner import decode_files
from tasks.ingest.settings import IngestSettings, load_settings
from tasks.monitor import log
from tasks.monitor.entries import from_predictions
from tasks.monitor.settings import monitor_params
from tasks.preprocess.stage import PreprocessParams
from tasks.preprocess.transform import TransformSettings, image_to_tensor
from tasks.promote.gate import PromoteParams

OUTPUT_SUFFIXES = (".csv", ".json")
OUT_OF_DISTRIBUTION = "out_of_distribution"
COLUMNS = ["source_path", "frame", "image_id", "patient_id", "status", "reason"]
# (header attributes, (1, S, S) tensor) -> (reason or "", the image's data_profile statistics or ())
Screen = Callable[[ImageMeta, np.ndarray], tuple[str, tuple[float, ...]]]


@section("predict")
class PredictParams:
    """params.yaml `predict` section."""

    ood_margin: Annotated[float, Field(ge=0)]


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
    files: list[Path], ingest: IngestSettings, transform: TransformSettings, salt: bytes, screen: Screen
) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """One record per decoded 2D image (and one per unusable file, with its reason), and the tensors of
    the images to classify: those `screen` finds no reason against.

    Ids are made as ingest makes them: image id from content hash + frame, patient and study pseudonyms
    salted. A decoded image's record also keeps its header attributes (`meta`), `statistics` and
    `study_id` for the prediction log; the output table leaves them out.
    """
    records: list[dict[str, Any]] = []
    tensors: list[np.ndarray] = []
    for file, decoded in zip(files, decode_files(files, ingest), strict=True):
        if decoded.disposition != "ok":  # skipped (holds no image) or quarantined (damaged, refused)
            records.append(
                {"source_path": printable_path(file), "status": decoded.disposition, "reason": decoded.reason}
            )
            continue
        content = decoded.source_hash
        for image in decoded.images:
            tensor = image_to_tensor(image.pixels, transform)  # (1, S, S) float16
            reason, statistics = screen(image.meta, tensor)
            records.append(
                {
                    "source_path": printable_path(file),
                    "frame": image.frame,
                    "image_id": image_id(content, image.frame),
                    "patient_id": pseudonym("P", image.keys.patient or f"file:{content}", salt),
                    "study_id": pseudonym("S", image.keys.study or f"file:{content}", salt),
                    "status": OUT_OF_DISTRIBUTION if reason else "ok",
                    "reason": reason,
                    "meta": image.meta,
                    "statistics": statistics,
                }
            )
            if not reason:
                tensors.append(tensor)
    return records, tensors


def training_screen(config: dict[str, Any], margin: float) -> Screen:
    """The out-of-distribution check against the profile the train stage stored with the model."""
    profile = config.get("data_profile")
    if profile is None:
        print("predict: this model carries no training-data profile; inputs are not screened")
        return lambda meta, tensor: ("", ())

    def screen(meta: ImageMeta, tensor: np.ndarray) -> tuple[str, tuple[float, ...]]:
        attributes = {name: getattr(meta, name) for name in HEADER}
        statistics = image_statistics(tensor[None], profile)[0]
        return unlike_training(profile, attributes, statistics, margin), tuple(statistics.tolist())

    return screen


def gradcam_names(frame: pd.DataFrame) -> list[str]:
    """A PNG name per row, after the input's file name (`chest.dcm` -> `chest.png`, frame k of a
    multi-frame file -> `chest_frame<k>.png`), made unique with -2, -3... when names repeat."""
    stems = [_stem(Path(path)) for path in frame["source_path"]]
    frames_per_file = Counter(frame["source_path"])
    taken: Counter[str] = Counter()
    names = []
    for stem, path, index in zip(stems, frame["source_path"], frame["frame"], strict=True):
        base = f"{stem}_frame{index}" if frames_per_file[path] > 1 else stem
        taken[base] += 1
        names.append(f"{base}.png" if taken[base] == 1 else f"{base}-{taken[base]}.png")
    return names


def _stem(path: Path) -> str:
    """The file name without its image suffix (`.nii.gz`, `.dcm`, `.png`...): DICOM files named by UID
    (`1.2.840.10008.5.dcm`) keep their dots."""
    name = path.name
    for suffix in (".nii.gz", ".nii", ".dcm", ".dicom", ".png", ".jpg", ".jpeg", ".tif", ".tiff"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def predict_files(
    paths: list[Path], *, params: dict[str, Any], model: str, out: Path, gradcam_dir: Path | None
) -> pd.DataFrame:
    """Write per-class probabilities and the predicted label for every image under `paths` to `out`."""
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise RadflowError(
            f"--out {out}: unknown format {out.suffix!r}; valid suffixes: {list(OUTPUT_SUFFIXES)}"
        )
    project = project_paths(params)  # every setting is checked before the model is loaded
    batch_size = parse_section(params, "promote", PromoteParams).batch_size
    preprocess = parse_section(params, "preprocess", PreprocessParams)
    ingest = load_settings(params)
    margin = parse_section(params, "predict", PredictParams).ood_margin
    log_max_bytes = int(monitor_params(params).log_max_mb * 2**20)
    source = resolve_model(model, project.registry)  # a registry ref or a fetched folder, verified
    network, config = models.load_model(source.path)
    # The model's own input size wins over params.yaml: it is what the weights were trained on.
    transform = preprocess.transform_settings(int(config["image_size"]))
    salt = load_salt(ingest.salt_env, project.private)
    screen = training_screen(config, margin)
    records, tensors = decode_all(expand(paths), ingest, transform, salt, screen)
    classes = list(config["classes"])
    frame = pd.DataFrame(records, columns=COLUMNS)
    frame["frame"] = frame["frame"].astype("Int64")  # integer frames; empty for skipped files
    frame["reason"] = frame["reason"].fillna("")
    ok = (frame["status"] == "ok").to_numpy()
    logits = np.full((len(frame), len(classes)), np.nan)
    frame["gradcam"] = ""
    if tensors:
        images = np.stack(tensors)  # (N, 1, S, S)
        logits[ok] = predict_logits(network, config, images, np.arange(len(images)), batch_size)
        if gradcam_dir is not None:
            names = gradcam_names(frame[ok])
            for position, image in enumerate(images):
                predicted = int(logits[ok][position].argmax())
                heat = gradcam_map(network, config, image, predicted)
                save_overlay(gradcam_dir / names[position], image, heat, f"predicted {classes[predicted]}")
            frame.loc[ok, "gradcam"] = names
    negative_class = params["evaluate"]["negative_class"]
    operating = from_record(registered_metrics(source, project.registry), classes, negative_class)
    frame = frame.join(decision_columns(logits, ok, classes, operating))
    frame["model_version"] = source.label
    entries = from_predictions(records, frame, source.label, datetime.now(UTC))
    if entries:
        log.append(log.log_folder(project.private), entries, log_max_bytes)
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
    counts = Counter(frame["status"])
    print(
        f"predict: model {source.label} ({rule}): {counts['ok']} image(s) classified, "
        f"{counts[OUT_OF_DISTRIBUTION]} out of distribution (not classified), {counts['skipped']} file(s) "
        f"skipped, {counts['quarantined']} quarantined -> {out}"
    )
    if not counts["ok"]:  # nothing to show for the run: a failure, with the reasons
        shown = "; ".join(f"{row['source_path']}: {row['status']} ({row['reason']})" for row in records[:3])
        more = f"; and {len(records) - 3} more" if len(records) > 3 else ""
        raise RadflowError(f"no input could be classified: {shown}{more} (every reason is in {out})")
    return frame


def registered_metrics(source: ModelSource, registry_root: Path) -> dict[str, Any]:
    """The evaluation record registered with the model (it holds the operating point); {} for a model
    folder no local registry version matches."""
    if source.version is None:
        return {}
    return dict(Registry(registry_root).load(source.version).metrics)


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
