"""`radflow registry show`: one screen about a version, from the full record `Registry.show` returns."""

from __future__ import annotations

from typing import Any

SHOWN_METRICS = ("roc_auc", "pr_auc", "sensitivity", "specificity")  # with their 95% CI


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _metric(metrics: dict[str, Any], name: str) -> str:
    low, high = (metrics.get("ci") or {}).get(name) or (None, None)
    interval = "" if low is None or high is None else f" (95% CI {low:.3f}-{high:.3f})"
    return f"{_number(metrics.get(name))}{interval}"


def _decision(decision: dict[str, Any]) -> str:
    if decision.get("manual"):
        return f"registered by hand: {decision.get('reason')}"
    verdict = "promoted by the gate" if decision.get("promoted") else "not promoted"
    return f"{verdict}: {'; '.join(decision.get('reasons') or []) or 'no reasons recorded'}"


def _lineage(lineage: dict[str, Any]) -> str:
    git = lineage.get("git") or {}
    commit = git.get("commit")
    state = {True: "uncommitted changes", False: "clean", None: "state unknown"}[git.get("dirty")]
    where = f"git {commit[:12]} ({state})" if commit else "no git commit"
    packages = lineage.get("packages") or {}
    versions = ", ".join(f"{name} {packages[name]}" for name in ("torch", "monai") if packages.get(name))
    return "; ".join(
        part for part in (where, f"{len(lineage.get('dvc_lock') or {})} dvc.lock stages", versions) if part
    )


def summary_lines(record: dict[str, Any]) -> list[str]:
    """A short readable summary: version, aliases, classes, headline metrics, gate decision, lineage."""
    config, metrics = record.get("config") or {}, record.get("metrics") or {}
    architecture = config.get("architecture") or {}
    aliases = f"  [{', '.join(record['aliases'])}]" if record.get("aliases") else ""
    rows = [
        ("created", record.get("created", "n/a")),
        ("classes", ", ".join(config.get("classes", [])) or "n/a"),
        ("network", f"{architecture.get('name', 'n/a')}, {config.get('image_size', '?')} px input"),
        *((name, _metric(metrics, name)) for name in SHOWN_METRICS),
        ("threshold", _number(metrics.get("threshold"))),
        ("decision", _decision(record.get("decision") or {})),
        ("lineage", _lineage(record.get("lineage") or {})),
        ("weights", f"sha256 {record.get('weights_sha256', 'n/a')}"),
    ]
    width = max(len(name) for name, _ in rows)
    return [f"radflow registry v{record['version']}{aliases}", *(f"{k:<{width}}  {v}" for k, v in rows)]
