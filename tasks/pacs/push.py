"""`radflow predict ... --push`: one result report (DICOM SR) per classified study, sent to `pacs.url`.

Studies are found from the headers of the DICOM files that were classified (files without a study,
such as NIfTI or PNG, have no PACS study to report to and are counted as skipped). A study's result is
that of its most suspicious image: the highest probability of an abnormal finding (anything but
`evaluate.negative_class`), judged against the operating threshold registered with the model.
The reports go to the PACS only; the console gets counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from scipy.special import expit

from models.registry import Registry
from models.registry.source import resolve_model
from tasks.common.errors import RadflowError
from tasks.common.paths import project_paths
from tasks.pacs.connect import connect
from tasks.pacs.console import console, quiet_library_logs
from tasks.pacs.part10 import ensure_part10
from tasks.pacs.report import StudyResult, build_report
from tasks.pacs.settings import endpoint, load_pacs_settings


@dataclass(frozen=True)
class PushSummary:
    """Counts of one push (no identifiers)."""

    reports: int
    skipped_files: int

    def describe(self, url: str) -> str:
        return (
            f"push: {self.reports} result report(s) sent to PACS {url}; "
            f"{self.skipped_files} file(s) without a classified DICOM study skipped"
        )


def push_predictions(predictions: pd.DataFrame, params: dict[str, Any], model: str) -> PushSummary:
    """Send one SR per study among `predictions` (the frame `tasks.predict.predict_files` returns for
    the model reference `model`): the SR states the decision predict made, at the threshold it used."""
    quiet_library_logs()
    settings = load_pacs_settings(params)
    where = endpoint(settings)
    classified = predictions[predictions["status"] == "ok"]
    if classified.empty:
        raise RadflowError("no image was classified, so there is no result to push")
    source = resolve_model(model, project_paths(params).registry)
    if source.version is None or classified["abnormal"].isna().any():
        raise RadflowError(
            "--push needs a model registered here with its validated operating threshold (the report "
            f"states the decision at it); {source.label} has none"
        )
    registered = Registry(project_paths(params).registry).load(source.version)
    model_name = f"radflow {registered.config['architecture'].get('name', 'model')}"
    studies, skipped = _by_study(classified, predictions)
    transport = connect(where, settings)
    try:
        for evidence, rows in studies.values():
            worst = rows.iloc[int(rows["abnormal_log_odds"].to_numpy(dtype=float).argmax())]
            result = StudyResult(
                finding=str(worst["predicted_label"]),
                probability=float(expit(worst["abnormal_log_odds"])),
                threshold=float(expit(worst["threshold"])),
                abnormal=bool(worst["abnormal"]),
                model_name=model_name,
                model_version=registered.version,
                images=len(rows),
            )
            transport.store(ensure_part10(build_report(evidence, result, settings.report_disclaimer)))
    finally:
        transport.close()
    summary = PushSummary(len(studies), skipped)
    console.print(summary.describe(where.url))
    return summary


def _by_study(
    classified: pd.DataFrame, predictions: pd.DataFrame
) -> tuple[dict[str, tuple[list[Dataset], pd.DataFrame]], int]:
    """StudyInstanceUID -> (headers of its classified instances, their prediction rows), and the
    number of source files that are not part of any DICOM study."""
    headers = {str(path): _header(Path(path)) for path in predictions["source_path"].unique()}
    studies: dict[str, tuple[list[Dataset], list[pd.DataFrame]]] = {}
    for path, rows in classified.groupby("source_path", sort=True):
        header = headers[str(path)]
        if header is not None:
            evidence, parts = studies.setdefault(str(header.StudyInstanceUID), ([], []))
            evidence.append(header)
            parts.append(rows)
    reported = set(classified["source_path"])
    skipped = sum(1 for path, header in headers.items() if header is None or path not in reported)
    return {study: (evidence, pd.concat(parts)) for study, (evidence, parts) in studies.items()}, skipped


def _header(path: Path) -> Dataset | None:
    """The file's DICOM header when it is a DICOM instance of a study, else None."""
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError):
        return None
    needed = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
    return header if all(keyword in header for keyword in needed) else None
