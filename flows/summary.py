"""What a retrain changed, in a form ready for a commit message: dvc.lock and the metrics diff.

The "previous run" is the workspace before this run (snapshotted by `snapshot`), not the last git
commit, so the diff answers "what did this week's run change?" even when nobody committed last week's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOCK_FILE = "dvc.lock"


@dataclass(frozen=True)
class Snapshot:
    """The pipeline's observable state at one moment: dvc.lock's hash and every DVC metric."""

    lock_sha256: str | None
    metrics: dict[str, float]


@dataclass(frozen=True)
class RunSummary:
    """Before/after comparison of one retrain run."""

    lock_changed: bool
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    metric_changes: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    pushed: bool = False
    params_changed: bool = False  # this run's overrides were written into params.yaml

    def markdown(self) -> str:
        """A commit-ready summary: a subject line, then what ran and how the metrics moved."""
        subject = "retrain: dvc.lock updated" if self.lock_changed else "retrain: nothing changed"
        lines = [
            f"**{subject}**",
            "",
            f"- stages run: {', '.join(self.ran) or 'none'}",
            f"- stages skipped (up to date): {', '.join(self.skipped) or 'none'}",
            f"- pushed to DVC remote: {'yes' if self.pushed else 'no'}",
        ]
        if self.lock_changed:
            changed = "dvc.lock params.yaml" if self.params_changed else "dvc.lock"
            lines.append(f"- to record this run: `git add {changed} && git commit`")
            lines.append(
                "- then publish the registry's versions and champion for `dvc artifacts get`: "
                "`radflow registry tag --push`"
            )
        if self.metric_changes:
            lines += ["", "| metric | previous run | this run | change |", "| --- | --- | --- | --- |"]
            for name, (old, new) in sorted(self.metric_changes.items()):
                change = f"{new - old:+.4f}" if old is not None and new is not None else "new"
                lines.append(f"| {name} | {_fmt(old)} | {_fmt(new)} | {change} |")
        else:
            lines += ["", "Metrics unchanged."]
        return "\n".join(lines) + "\n"


def snapshot(project: Path) -> Snapshot:
    """Hash dvc.lock and read every metric DVC declares (missing files simply contribute nothing)."""
    import dvc.api

    lock = project / LOCK_FILE
    digest = hashlib.sha256(lock.read_bytes()).hexdigest() if lock.exists() else None
    try:
        metrics = flatten_numbers(dvc.api.metrics_show(repo=str(project)))
    except Exception:
        metrics = {}
    return Snapshot(lock_sha256=digest, metrics=metrics)


def compare(
    before: Snapshot,
    after: Snapshot,
    ran: list[str],
    skipped: list[str],
    pushed: bool,
    params_changed: bool = False,
) -> RunSummary:
    """Summarise the difference between two snapshots."""
    changes = {
        name: (before.metrics.get(name), after.metrics.get(name))
        for name in sorted(set(before.metrics) | set(after.metrics))
        if before.metrics.get(name) != after.metrics.get(name)
    }
    return RunSummary(
        lock_changed=before.lock_sha256 != after.lock_sha256,
        ran=ran,
        skipped=skipped,
        metric_changes=changes,
        pushed=pushed,
        params_changed=params_changed,
    )


def flatten_numbers(tree: Any, prefix: str = "") -> dict[str, float]:
    """Nested metrics as `a.b.c -> number`; lists and strings are left out of the diff."""
    if isinstance(tree, dict):
        flat: dict[str, float] = {}
        for key, value in tree.items():
            flat.update(flatten_numbers(value, f"{prefix}{key}."))
        return flat
    if isinstance(tree, int | float) and not isinstance(tree, bool):
        return {prefix.rstrip("."): float(tree)}
    return {}


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"
