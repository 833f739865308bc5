"""Promote stage: judge the evaluated candidate (tasks.promote.gate) and update the registry if it passes.

Either way the stage succeeds and writes `paths.promotion/promotion.json`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

import models
from models.registry import Registry, collect_lineage
from models.registry.mlflow_mirror import mirror_if_configured
from tasks.common.atomic import write_json
from tasks.common.errors import RadflowError
from tasks.common.hashing import file_sha256
from tasks.common.jsonsafe import finite_or_none
from tasks.common.params import parse_section
from tasks.common.paths import project_paths
from tasks.common.record import METRICS_FILE, read_record
from tasks.promote.gate import PromoteParams, decide


def main(params: dict[str, Any]) -> None:
    """Stage entry point: judge the candidate, update the registry if it passes, write promotion.json."""
    settings = parse_section(params, "promote", PromoteParams)
    paths = project_paths(params)
    report = paths.evaluation / "report"
    inputs = [paths.evaluation / METRICS_FILE, report / "test_predictions.csv", report / "model_card.md"]
    missing = [str(path) for path in inputs if not path.is_file()]
    if missing:
        raise RadflowError(f"evaluation outputs missing: {missing}; run `radflow stage evaluate` first")
    models.read_config(paths.model)  # a clear error when the candidate model is absent
    metrics = read_record(paths.evaluation)  # headline + detail: the registry keeps the whole record
    predictions = pd.read_csv(inputs[1], dtype={"patient_id": str, "image_id": str})
    registry = Registry(paths.registry, settings.lock_timeout_s)
    decision = decide(
        registry,
        settings=settings,
        metrics=metrics,
        predictions=predictions,
        weights_sha256=file_sha256(paths.model / "model.safetensors"),
        store_dir=paths.preprocessed,
        seed=int(params["seed"]),
    )
    decision = finite_or_none(decision)
    if decision["promoted"]:
        decision["version"] = registry.register_champion(
            paths.model,
            metrics=metrics,
            model_card=inputs[2].read_text(),
            lineage=collect_lineage(Path.cwd()),
            decision=decision,
        )
    else:
        decision["version"] = None
        registry.record({"event": "not_promoted", **decision})
    write_json(paths.promotion / "promotion.json", decision)
    mirror_if_configured(registry, params, Path.cwd(), print)  # optional MLflow mirror; only ever warns
    verdict = f"promoted as v{decision['version']}" if decision["promoted"] else "not promoted"
    print(f"promote: candidate {verdict}: {'; '.join(decision['reasons'])}")
