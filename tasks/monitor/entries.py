"""Prediction-log entries from what `predict` computed: pseudonymised ids and aggregate-safe attributes.

An entry never holds an identifier: no source path, no patient name or id, no DICOM UID in clear (the
ids are ingest's salted pseudonyms and the content-hash image id), and only the header attributes the
training data's profile compares (modality, manufacturer, body part, photometric, pixel spacing band).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pandas as pd

from tasks.common.data_profile import STATISTICS, spacing_band
from tasks.ingest.records import ImageMeta

LOGGED = ("ok", "out_of_distribution")  # statuses of decoded images; unusable files are not arrivals


def _number(value: Any) -> float | None:
    """A finite float, or None (JSON has no NaN)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def entry(
    *,
    ids: dict[str, str],
    arrived: datetime,
    meta: ImageMeta,
    status: str,
    statistics: tuple[float, ...],
    decision: dict[str, Any],
    model_version: str,
) -> dict[str, Any]:
    """One log entry. `ids`: image_id, study_id, patient_id pseudonyms; `statistics`: the image's
    data_profile statistics (empty when the model carries no profile); `decision`: the row's
    abnormal_log_odds, abnormal and predicted_label (empty for an image not classified)."""
    flagged = decision.get("abnormal")
    return {
        **{key: ids[key] for key in ("image_id", "study_id", "patient_id")},
        "arrived": arrived.isoformat(timespec="seconds"),
        "modality": meta.modality,
        "manufacturer": meta.manufacturer,
        "body_part": meta.body_part,
        "photometric": meta.photometric,
        "spacing_band": spacing_band(meta.spacing_row),
        "out_of_distribution": status == "out_of_distribution",
        "statistics": {name: _number(value) for name, value in zip(STATISTICS, statistics, strict=False)},
        "abnormal_log_odds": _number(decision.get("abnormal_log_odds")),
        "abnormal": None if flagged is None or pd.isna(flagged) else bool(flagged),
        "predicted_label": str(decision.get("predicted_label") or ""),
        "model_version": model_version,
    }


def from_predictions(
    records: list[dict[str, Any]], frame: pd.DataFrame, model_version: str, arrived: datetime
) -> list[dict[str, Any]]:
    """The entries of one predict run: `records` are decode_all's (with the `meta`, `statistics` and
    `study_id` it keeps for the log), `frame` the output table in the same row order."""
    decisions = frame.reindex(columns=["abnormal_log_odds", "abnormal", "predicted_label"])
    return [
        entry(
            ids={key: record[key] for key in ("image_id", "study_id", "patient_id")},
            arrived=arrived,
            meta=record["meta"],
            status=record["status"],
            statistics=record["statistics"],
            decision=decision,
            model_version=model_version,
        )
        for record, decision in zip(records, decisions.to_dict("records"), strict=True)
        if record["status"] in LOGGED
    ]
