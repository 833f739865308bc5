"""`radflow pull`: copy every instance the PACS holds and radflow does not yet have into `ingest.source`.

Which studies: those matching `pacs.filters` whose StudyDate falls in the lookback window (from
`pacs.lookback_days` before the last complete pull; everything on the first pull), plus, where the
server has a change feed, every matching study that received instances since the last pull, whatever
its StudyDate. Of those, instances already held are skipped (remembered in `paths.private`, or their
file is there). A series with nothing held is fetched in one request, others instance by instance.

Each instance is written atomically as a Part 10 file under an opaque name, so a pull killed at any
moment leaves whole files (and hidden temporary ones, which ingest ignores and the next pull removes);
the next pull fetches the rest. Output: a progress bar and one summary line with counts only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from pydicom.dataset import Dataset
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tasks.common.errors import RadflowError
from tasks.common.paths import make_private, project_paths
from tasks.ingest.settings import load_settings
from tasks.pacs.connect import connect
from tasks.pacs.console import console, quiet_library_logs
from tasks.pacs.part10 import instance_path, opaque_name, write_arrived
from tasks.pacs.settings import Endpoint, PacsSettings, endpoint, load_pacs_settings
from tasks.pacs.state import ServerState, load_state, save_state
from tasks.pacs.transport import InstanceRef, PacsRefused, PacsUnavailable, Transport

LOCK_FILE = "pacs_pull.lock"


@dataclass
class PullSummary:
    """What one pull did, in counts (never an identifier)."""

    studies: int = 0
    new: int = 0
    held: int = 0
    failed: int = 0
    left_for_next: int = 0  # over pacs.max_instances: fetched by the next pull

    def describe(self) -> str:
        line = (
            f"pull: {self.new} new, {self.held} already held, {self.failed} failed "
            f"(instances of {self.studies} studies)"
        )
        if self.left_for_next:
            line += f"; {self.left_for_next} left for the next pull (pacs.max_instances)"
        return line


def pull_from_params(params: dict[str, Any], *, show_progress: bool = True) -> PullSummary:
    """`radflow pull`: pull into `ingest.source`/`pacs.folder` with params.yaml's settings."""
    settings = load_pacs_settings(params)
    source = load_settings(params).source
    return run_pull(settings, source / settings.folder, project_paths(params).private, show_progress)


def run_pull(settings: PacsSettings, archive: Path, private: Path, show_progress: bool = True) -> PullSummary:
    """Fetch what is new into `archive`; one pull at a time per private folder."""
    quiet_library_logs()
    where = endpoint(settings)
    make_private(private)
    try:
        with FileLock(private / LOCK_FILE, timeout=0):
            _remove_leftovers(archive)
            summary = _pull(where, settings, archive, private, show_progress)
    except Timeout:
        raise RadflowError(f"another pull is running (lock {private / LOCK_FILE} is held)") from None
    console.print(summary.describe())
    return summary


def _pull(
    where: Endpoint, settings: PacsSettings, archive: Path, private: Path, show_progress: bool
) -> PullSummary:
    state = load_state(private, where.url)
    transport = connect(where, settings)
    summary = PullSummary()
    try:
        cursor = transport.change_cursor() if settings.change_feed else None
        studies = _studies(transport, settings, state)
        groups, summary.held, summary.left_for_next = _plan(transport, studies, state, archive, settings)
        summary.studies = len(studies)
        with _progress(sum(len(refs) for refs, _ in groups), show_progress) as advance:
            for refs, whole in groups:
                new, failed = _fetch(transport, refs, whole, archive, state, advance)
                summary.new += new
                summary.failed += failed
    finally:
        transport.close()
        os.sync()  # the files are on disk before the state says they are held
        save_state(private, where.url, state)
    if not summary.failed and not summary.left_for_next:
        state.last_complete, state.cursor = dt.date.today(), cursor
        save_state(private, where.url, state)
    return summary


def _studies(transport: Transport, settings: PacsSettings, state: ServerState) -> list[str]:
    """Matching studies in the lookback window, plus matching studies the change feed names."""
    since = None
    if state.last_complete is not None and settings.lookback_days is not None:
        since = state.last_complete - dt.timedelta(days=settings.lookback_days)
    studies = transport.studies(settings.filters, since)
    if since is not None and settings.change_feed and state.cursor is not None:
        changed, _ = transport.changed_studies(state.cursor)
        for study in sorted(changed - set(studies)):
            if transport.studies({**settings.filters, "StudyInstanceUID": study}, None):
                studies.append(study)
    return studies


def _plan(
    transport: Transport, studies: list[str], state: ServerState, archive: Path, settings: PacsSettings
) -> tuple[list[tuple[list[InstanceRef], bool]], int, int]:
    """Series groups to fetch now (True: the whole series, nothing of it held or left over), how many
    instances are already held, and how many wait for the next pull (over `pacs.max_instances`)."""
    groups: dict[tuple[str, str], list[InstanceRef]] = {}
    partial: set[tuple[str, str]] = set()  # series with some instance held or left over
    held = waiting = planned = 0
    for study in studies:
        for ref in transport.instances(study):
            series, name = (ref.study, ref.series), opaque_name(ref.sop)
            if name in state.held or instance_path(archive, ref.study, ref.series, ref.sop).exists():
                state.held.add(name)  # a file without an entry: written by a pull killed before saving
                held += 1
                partial.add(series)
            elif planned < settings.max_instances:
                groups.setdefault(series, []).append(ref)
                planned += 1
            else:
                waiting += 1
                partial.add(series)
    return [(refs, series not in partial) for series, refs in groups.items()], held, waiting


def _fetch(
    transport: Transport,
    refs: list[InstanceRef],
    whole: bool,
    archive: Path,
    state: ServerState,
    advance: Callable[[], None],
) -> tuple[int, int]:
    """Retrieve one series group; returns (instances written, wanted instances that did not arrive).

    A failure of this group alone (the PACS refused one request) is counted and the pull goes on;
    a PACS that is gone or refuses us stops the pull (what arrived so far is kept and recorded).
    """
    written: set[str] = set()

    def on_instance(dataset: Dataset) -> None:  # may run on a DIMSE association's thread
        name = write_arrived(archive, dataset)
        state.held.add(name)
        written.add(name)
        advance()

    try:
        transport.retrieve(refs, whole, on_instance)
    except (PacsUnavailable, PacsRefused):
        raise
    except RadflowError as error:
        console.print(f"[yellow]warning:[/] {error}")
    missing = sum(1 for ref in refs if opaque_name(ref.sop) not in written)
    return len(written), missing


@contextlib.contextmanager
def _progress(total: int, show: bool) -> Iterator[Callable[[], None]]:
    """A bar counting fetched instances (no names); yields the function that advances it."""
    if not show or total == 0:
        yield lambda: None
        return
    bar = Progress(
        TextColumn("[bold]pull[/] fetching"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    task = bar.add_task("pull", total=total)
    with bar:
        yield lambda: bar.advance(task)


def _remove_leftovers(archive: Path) -> None:
    """Delete hidden temporary files a killed pull left (the lock guarantees no pull is writing)."""
    if archive.is_dir():
        for leftover in archive.rglob(".*.tmp"):
            leftover.unlink(missing_ok=True)
