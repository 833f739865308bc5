"""Registering a model on purpose: a candidate the gate cannot compare (new classes, a first model on a
new task) goes into the registry after a person's review, with their reason in the audit log.

The version carries the same records as a gated one: the evaluate stage's metrics and model card (of
this very model: dvc.lock is checked when it can tell), lineage, and a decision saying who decided why.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from models.registry.dvc_hashes import LOCK_FILE, lock_md5, model_artifact, model_dir_md5
from models.registry.lineage import collect_lineage
from models.registry.store import Registry
from models.store import read_config
from tasks.common.errors import RadflowError


def evaluated_model_matches(project: Path, model_dir: Path) -> bool | None:
    """Whether dvc.lock's evaluate stage scored exactly the model in `model_dir` (None: cannot tell)."""
    lock = project / LOCK_FILE
    if not lock.is_file() or not (project / "dvc.yaml").is_file():
        return None
    evaluated = lock_md5(lock.read_text(), model_artifact(project).path, kind="deps", stage="evaluate")
    return None if evaluated is None else evaluated == model_dir_md5(model_dir)


def register_by_hand(
    registry: Registry,
    model_dir: Path,
    *,
    evaluation_dir: Path,
    project: Path,
    reason: str,
    champion: bool,
) -> int:
    """Register `model_dir` with the evaluate stage's records and `reason`; returns the new version."""
    if not reason.strip():
        raise RadflowError("--reason is required: say why this model is registered without the gate")
    config = read_config(model_dir)  # a clear error when model_dir holds no model
    metrics_file, card_file = evaluation_dir / "metrics.json", evaluation_dir / "report" / "model_card.md"
    missing = [str(path) for path in (metrics_file, card_file) if not path.is_file()]
    if missing:
        raise RadflowError(f"evaluation outputs missing: {missing}; evaluate the model first (dvc repro)")
    matches = evaluated_model_matches(project, model_dir)
    if matches is False:
        raise RadflowError(
            f"{evaluation_dir} holds the evaluation of another model than {model_dir} (per {LOCK_FILE}); "
            "run `dvc repro evaluate` for this model first"
        )
    before = registry.aliases()["champion"]
    decision: dict[str, Any] = {
        "promoted": champion,
        "manual": True,
        "reason": reason,
        "reasons": [f"registered by hand after review: {reason}"],
        "champion_before": before,
        "classes": list(config["classes"]),
        "evaluation_matches_model": matches,
        "floors": None,
        "comparison": None,
    }
    return registry.register(
        model_dir,
        metrics=json.loads(metrics_file.read_text()),
        model_card=card_file.read_text(),
        lineage=collect_lineage(project),
        decision=decision,
        champion=champion,
        audit={"event": "registered_by_hand", "reason": reason, "champion": champion},
    )
