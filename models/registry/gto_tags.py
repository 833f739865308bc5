"""Publish the registry through git: GTO tags that `dvc artifacts get REPO NAME --stage champion` reads.

For each registry version N, `NAME@vN.0.0` (GTO accepts only semantic versions) goes on the oldest
commit whose dvc.lock holds version N's weights; each alias (`champion`, `previous`) becomes a GTO
stage assignment, re-assigned whenever the registry's alias has moved (promote, rollback). The registry
stays the truth: this module only reads it, and every run makes the tags agree with it (idempotent).

GTO refuses a second version on one commit, and a tag needs the run's dvc.lock to be committed: a
version whose run is not committed yet is reported with the exact commit to make, never guessed.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.registry.dvc_hashes import (
    LOCK_FILE,
    ModelArtifact,
    lock_md5,
    model_artifact,
    model_dir_md5,
)
from models.registry.store import Registry
from tasks.common.errors import RadflowError

REMOTE = "origin"  # where `--push` sends the tags (GTO's and DVC Studio's convention)


@dataclass
class TagReport:
    """What one run did: tags created, tags already right, and what still needs the user."""

    artifact: str
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # one sentence each: what to do
    blocked_aliases: list[str] = field(default_factory=list)  # aliases GTO cannot show correctly yet
    pushed: bool = False


def gto_version(version: int) -> str:
    """Registry version 3 -> GTO's `v3.0.0`."""
    return f"v{version}.0.0"


def _git(project: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=project, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RadflowError(f"git {' '.join(args)} failed in {project}: {result.stderr.strip()}")
    return result.stdout


def check_git_root(project: Path) -> None:
    """The project must be the root of a git repository with at least one commit."""
    try:
        top = _git(project, "rev-parse", "--show-toplevel").strip()
        _git(project, "rev-parse", "--verify", "HEAD")
    except RadflowError:
        raise RadflowError(
            f"{project} is not a git repository with commits: GTO tags live in git; "
            "`git init`, commit dvc.yaml, dvc.lock and params.yaml, then run `radflow registry tag`"
        ) from None
    if Path(top).resolve() != project.resolve():
        raise RadflowError(f"run `radflow registry tag` at the git root ({top}), where dvc.yaml is")


def commits_holding(project: Path, model_path: str) -> dict[str, str]:
    """md5 of the model output -> the oldest commit (ancestor of HEAD) whose dvc.lock records it."""
    holders: dict[str, str] = {}
    log = _git(project, "log", "--reverse", "--format=%H", "--", LOCK_FILE)
    for commit in log.split():
        md5 = lock_md5(_git(project, "show", f"{commit}:{LOCK_FILE}"), model_path)
        if md5 is not None:
            holders.setdefault(md5, commit)
    return holders


def _uncommitted_md5(project: Path, model_path: str) -> str | None:
    lock = project / LOCK_FILE
    return lock_md5(lock.read_text(), model_path) if lock.is_file() else None


@contextlib.contextmanager
def _gto_errors() -> Iterator[None]:
    """GTO's refusals as the one domain error."""
    from gto.exceptions import GTOException

    try:
        yield
    except GTOException as error:
        raise RadflowError(f"GTO refused: {error}") from None


def _events(project: Path, name: str) -> list[dict[str, Any]]:
    """The artifact's GTO tags as GTO reads them (`gto history`), oldest first: each with its `event`
    (registration, assignment...), `version`, `stage`, `commit`, `timestamp` and tag name (`ref`)."""
    from gto import api

    with _gto_errors():
        events = api.history(str(project), artifact=name, ascending=True)
    return [event for event in events if event["event"] != "commit"]  # commits carry no tag


def _existing_versions(events: list[dict[str, Any]]) -> dict[str, str]:
    """GTO version (`v3.0.0`) -> tagged commit, for every registration tag of the artifact."""
    return {event["version"]: event["commit"] for event in events if event["event"] == "registration"}


def _stage_head(events: list[dict[str, Any]], stage: str) -> tuple[str | None, int]:
    """The commit DVC resolves `--stage` to (its latest assignment tag) and that tag's time (0: none)."""
    in_stage = [event for event in events if event["stage"] == stage]  # by tag time, as DVC sorts them
    return (in_stage[-1]["commit"], int(in_stage[-1]["timestamp"].timestamp())) if in_stage else (None, 0)


def _after(seconds: int) -> None:
    """Wait until the clock is past `seconds`: GTO and DVC order assignments by tag time in whole seconds,
    so a re-assignment in the same second as the last one could be read as the older of the two."""
    while time.time() < seconds + 1:
        time.sleep(0.1)


def sync_tags(registry: Registry, project: Path, *, push: bool) -> TagReport:
    """Create the GTO tags the registry implies (never moves or deletes one); push them if asked."""
    check_git_root(project)
    artifact = model_artifact(project)
    report = TagReport(artifact.name)
    tagged = _existing_versions(_events(project, artifact.name))
    _register_versions(registry, project, artifact, tagged, report)
    _assign_aliases(registry, project, artifact.name, tagged, report)
    tags = [event["ref"] for event in _events(project, artifact.name)]
    if push and tags:  # no refspec at all would make `git push` push the current branch instead
        _git(project, "push", REMOTE, *[f"refs/tags/{tag}" for tag in tags])
        report.pushed = True
    return report


def _register_versions(
    registry: Registry, project: Path, artifact: ModelArtifact, tagged: dict[str, str], report: TagReport
) -> None:
    """`NAME@vN.0.0` for every registry version not tagged yet whose weights a commit's dvc.lock holds."""
    from gto import api

    holders = commits_holding(project, artifact.path)
    used = set(tagged.values())
    for row in registry.versions():
        version, label = int(row["version"]), gto_version(int(row["version"]))
        tag = f"{artifact.name}@{label}"
        if label in tagged:
            report.unchanged.append(tag)
            continue
        md5 = model_dir_md5(registry.verify(version))
        commit = holders.get(md5)
        if commit is None:
            report.pending.append(_untaggable(version, md5, _uncommitted_md5(project, artifact.path)))
        elif commit in used:
            report.pending.append(
                f"v{version}: its weights are in commit {commit[:12]}, which GTO already tagged with "
                "another version (GTO allows one version per commit); nothing was tagged"
            )
        else:
            message = f"radflow registry v{version}; weights sha256 {row['weights_sha256']}"
            with _gto_errors():
                api.register(str(project), artifact.name, commit, version=label, message=message)
            tagged[label] = commit
            used.add(commit)
            report.created.append(tag)


def _assign_aliases(
    registry: Registry, project: Path, name: str, tagged: dict[str, str], report: TagReport
) -> None:
    """A new stage assignment for each alias whose latest GTO assignment is not the registry's target."""
    from gto import api

    for alias, target in registry.aliases().items():
        if target is None:
            continue
        label = gto_version(target)
        if label not in tagged:
            report.blocked_aliases.append(alias)
            report.pending.append(f"{alias} (v{target}) is not assigned until v{target} is tagged")
            continue
        head, head_time = _stage_head(_events(project, name), alias)
        if head == tagged[label]:
            report.unchanged.append(f"{name}#{alias} -> {label}")
            continue
        _after(head_time)
        with _gto_errors():  # force: moving back to a version GTO saw in this stage before is a new tag
            api.assign(
                str(project),
                name,
                alias,
                version=label,
                message=f"radflow registry {alias}: v{target}",
                force=True,
            )
        report.created.append(f"{name}#{alias} -> {label}")


def _untaggable(version: int, md5: str, uncommitted: str | None) -> str:
    """What to do about a version no commit's dvc.lock holds."""
    if uncommitted == md5:
        return (
            f"v{version}: the run that produced it is not committed yet: "
            f"`git add {LOCK_FILE} params.yaml && git commit -m 'Model v{version}'` "
            "(and `dvc push` its data), then run `radflow registry tag` again"
        )
    return (
        f"v{version}: no commit's {LOCK_FILE} holds its weights (the run was never committed and a later "
        f"run replaced {LOCK_FILE}), so DVC cannot fetch it by name; share it with "
        f"`radflow registry export-bundle {version} DIR` instead"
    )


def describe(report: TagReport) -> list[str]:
    """Lines for the terminal: what changed, what was already right, what needs the user."""
    lines = [f"created {tag}" for tag in report.created]
    lines += [f"unchanged {tag}" for tag in report.unchanged]
    lines += [f"to do: {item}" for item in report.pending]
    if report.pushed:
        lines.append(f"pushed the {report.artifact} tags to {REMOTE}")
    return lines
