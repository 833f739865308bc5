"""`radflow monitor`: the studies logged since the champion was registered, against its training data,
its validation predictions and (for arrivals that now carry labels) its registered test ROC-AUC.

Reads the prediction log (paths.private/prediction_log), the champion's registry version (verified)
and optionally a labels CSV keyed by the log's pseudonymised ids; writes `paths.monitor/metrics.json`
(every test, share and interval) and `paths.monitor/timeseries.csv` (one row per arrival month). A
threshold crossed is a warning line for a person, not a failure: the exit code stays 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from models.registry import Registry
from tasks.common.atomic import atomic_path, write_json
from tasks.common.classes import resolve_negative_class
from tasks.common.jsonsafe import finite_or_none
from tasks.common.operating import from_record
from tasks.common.paths import project_paths
from tasks.monitor import log
from tasks.monitor.analysis import Findings, Reference, analyse, arrivals_frame
from tasks.monitor.decay import read_labels
from tasks.monitor.settings import monitor_params

METRICS_FILE = "metrics.json"
SERIES_FILE = "timeseries.csv"


def champion_reference(record: dict[str, Any], negative_setting: str) -> Reference:
    """What the monitor compares with, from a registry version's record (Registry.show)."""
    config, metrics = record["config"], record["metrics"]
    operating = from_record(metrics, list(config["classes"]), negative_setting)
    negative = (
        operating.negative_class
        if operating is not None
        else resolve_negative_class(negative_setting, list(config["classes"]))
    )
    return Reference(
        profile=config.get("data_profile") or {},
        validation=metrics.get("validation") or {},
        test_roc_auc=metrics.get("roc_auc"),
        negative_class=negative,
    )


def run_monitor(params: dict[str, Any], labels: Path | None) -> Findings:
    """Compute and write the monitor's files; returns the findings (the warnings for the caller to show)."""
    paths = project_paths(params)
    settings = monitor_params(params)
    table = read_labels(labels) if labels is not None else None  # a bad CSV fails before any work
    record = Registry(paths.registry).show("champion")
    reference = champion_reference(record, params["evaluate"]["negative_class"])
    since = pd.Timestamp(record["created"])
    contents = log.read(log.log_folder(paths.private), since_month=since.strftime("%Y-%m"))
    arrivals = arrivals_frame(contents.entries)
    arrivals = arrivals[arrivals["arrived"] >= since].reset_index(drop=True)
    findings = analyse(arrivals, reference, settings, labels=table, seed=int(params["seed"]))
    header = {
        "champion": f"v{record['version']}",
        "since": record["created"],
        "torn_log_lines": contents.torn_lines,
    }
    write_json(paths.monitor / METRICS_FILE, finite_or_none(header | findings.metrics))
    with atomic_path(paths.monitor / SERIES_FILE) as tmp:
        findings.series.to_csv(tmp, index=False)
    return findings
