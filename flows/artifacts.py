"""Prefect artifacts that mirror the run's files: metrics next to the champion's, the promotion
decision, the HTML report link and the commit-ready summary.

Keys are stable so the Prefect UI shows each artifact's history across weekly runs. Files are the
truth (docs/DESIGN_NOTES.md): everything here is read from what the stages wrote, defensively, because a run
can fail or skip before a file exists. Only metric names, numbers and the gate's reasons are
published: no image, patient or source identifiers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from flows.summary import RunSummary, flatten_numbers
from tasks.common.errors import RadflowError
from tasks.common.paths import ProjectPaths

METRICS_KEY = "retrain-metrics"
PROMOTION_KEY = "retrain-promotion"
REPORT_KEY = "retrain-report"
SUMMARY_KEY = "retrain-summary"
# Headline metrics shown in the table (evaluate's top-level keys, CONTRACTS.md).
HEADLINE = ("roc_auc", "pr_auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "ece")


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`, or {} when it is missing or unreadable (the run may have stopped early)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def champion_metrics(registry_root: Path, promotion: dict[str, Any]) -> dict[str, float]:
    """Metrics of the champion the gate compared against (`champion_before`), read through the registry
    API, which verifies checksums; empty for a first model or an unreadable registry."""
    version = promotion.get("champion_before")
    if version is None:
        return {}
    from models.registry import Registry  # imports torch: only when there is a champion to show

    try:
        return flatten_numbers(Registry(registry_root).show(version)["metrics"])
    except (RadflowError, OSError, KeyError, ValueError):
        return {}


def metrics_rows(candidate: dict[str, float], champion: dict[str, float]) -> list[dict[str, Any]]:
    """One row per headline metric present in either model."""
    names = [name for name in HEADLINE if name in candidate or name in champion]
    return [
        {"metric": name, "this run": candidate.get(name), "previous champion": champion.get(name)}
        for name in names
    ]


def promotion_markdown(promotion: dict[str, Any]) -> str:
    """The gate's decision and its reasons as markdown."""
    if not promotion:
        return "## Promotion\n\nNo promotion decision was recorded by this run.\n"
    promoted = is_promoted(promotion)
    reasons = promotion.get("reasons", promotion.get("reason", []))
    reasons = [reasons] if isinstance(reasons, str) else list(reasons)
    lines = ["## Promotion", "", f"**{'Promoted' if promoted else 'Not promoted'}**"]
    if promotion.get("version") is not None:
        lines.append(f"\nNew registry version: `{promotion['version']}`")
    if promotion.get("champion_before") is not None:
        lines.append(f"\nChampion before this run: `{promotion['champion_before']}`")
    if reasons:
        lines += ["", "Reasons:", *[f"- {reason}" for reason in reasons]]
    return "\n".join(lines) + "\n"


def is_promoted(promotion: dict[str, Any]) -> bool:
    """Whether the gate moved the champion alias in this run."""
    return bool(promotion.get("promoted", promotion.get("decision") == "promoted"))


def publish_artifacts(project: Path, paths: ProjectPaths, summary: RunSummary) -> dict[str, Any]:
    """Create the four artifacts; returns the promotion decision for the notification hook."""
    metrics = flatten_numbers(read_json(project / paths.evaluation / "metrics.json"))
    promotion = read_json(project / paths.promotion / "promotion.json")
    create_table_artifact(
        key=METRICS_KEY,
        table=metrics_rows(metrics, champion_metrics(project / paths.registry, promotion)),
        description="Test-split metrics of this run's candidate next to the previous champion's",
    )
    create_markdown_artifact(
        key=PROMOTION_KEY, markdown=promotion_markdown(promotion), description="Promotion gate decision"
    )
    report = (project / paths.evaluation / "report" / "report.html").resolve()
    if report.exists():
        create_link_artifact(
            key=REPORT_KEY, link=report.as_uri(), link_text="Evaluation report", description="HTML report"
        )
    create_markdown_artifact(
        key=SUMMARY_KEY, markdown=summary.markdown(), description="Commit-ready summary of this run"
    )
    return promotion
