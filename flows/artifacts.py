"""Prefect artifacts that mirror the run's files: metrics next to the champion's, the promotion
decision, the HTML report link, the commit-ready summary, and the evaluation's warnings (a model that
did not learn, data too thin for its numbers) with a flow state a person notices.

Keys are stable so the Prefect UI shows each artifact's history across weekly runs. Files are the
truth (docs/DESIGN_NOTES.md): everything here is read from what the stages wrote, defensively, because a run
can fail or skip before a file exists. Only metric names, numbers and the gate's reasons are
published: no image, patient or source identifiers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.client.schemas.objects import State
from prefect.states import Completed

from flows.summary import RunSummary, flatten_numbers
from tasks.common.errors import RadflowError
from tasks.common.metrics import HEADLINE_METRICS
from tasks.common.paths import ProjectPaths
from tasks.common.record import read_object, read_record

METRICS_KEY = "retrain-metrics"
PROMOTION_KEY = "retrain-promotion"
REPORT_KEY = "retrain-report"
SUMMARY_KEY = "retrain-summary"
WARNINGS_KEY = "retrain-warnings"
NOT_LEARNED = "NotLearned"  # flow state name when the evaluation says the model did not learn
WARNING = "Warning"  # flow state name when it only warns (e.g. a validation split too small)
# Rows of the metrics table: evaluate's headline metrics and the simple baseline beside them.
HEADLINE = (*HEADLINE_METRICS, "baseline_roc_auc", "threshold")
read_json = read_object  # a JSON object from a path, or {} when missing or unreadable


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


def warnings_markdown(record: dict[str, Any]) -> str:
    """The evaluation's warnings as markdown (empty when it had none)."""
    learning, data = record.get("learning_warnings") or [], record.get("data_warnings") or []
    if not learning and not data:
        return ""
    title = "The model did not learn" if record.get("learned") is False else "Read these numbers with care"
    return "\n".join([f"## {title}", "", *[f"- {text}" for text in [*learning, *data]]]) + "\n"


def warning_state(project: Path, paths: ProjectPaths, data: Any) -> State[Any] | None:
    """Publish the evaluation's warnings and return the Completed state the flow should end in:
    named NotLearned or Warning, with the reasons as its message. None when there is nothing to say."""
    record = read_record(project / paths.evaluation)
    markdown = warnings_markdown(record)
    if not markdown:
        return None
    create_markdown_artifact(key=WARNINGS_KEY, markdown=markdown, description="Evaluation warnings")
    name = NOT_LEARNED if record.get("learned") is False else WARNING
    reasons = [*(record.get("learning_warnings") or []), *(record.get("data_warnings") or [])]
    return Completed(name=name, message="; ".join(reasons), data=data)


def publish_artifacts(project: Path, paths: ProjectPaths, summary: RunSummary) -> dict[str, Any]:
    """Create the four artifacts; returns the promotion decision for the notification hook."""
    metrics = flatten_numbers(read_record(project / paths.evaluation))
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
