"""What the operator sees: a progress bar with files/s while decoding, then a one-screen summary.

Neither ever prints a path or an identifier: the summary groups reasons by their category (the text
before the first colon), which ingest always phrases without file names or header values.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from tasks.ingest.overview import Overview

console = Console(stderr=True)
MAX_ROWS_SHOWN = 5  # labels CSV row numbers named in the warning; the count says how many more


class FilesPerSecond(ProgressColumn):
    """Decoding speed in files per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} files/s" if speed else "- files/s", style="cyan")


class DecodeProgress:
    """The bar shown while files decode, redrawn from the caller's thread at most every REDRAW_S.

    No refresh thread (rich's default): the stage forks its decode workers while the bar is shown,
    and a process forks safely only while it runs no other threads.
    """

    REDRAW_S = 0.25  # a redraw is paid by the process that collects the workers' results (BENCHMARKS.md)

    def __init__(self, total: int) -> None:
        self._bar = Progress(
            TextColumn("[bold]ingest[/] decoding"),
            BarColumn(),
            MofNCompleteColumn(),
            FilesPerSecond(),
            TimeElapsedColumn(),
            console=console,
            auto_refresh=False,
        )
        self._task = self._bar.add_task("decode", total=total)
        self._drawn = 0.0

    def __enter__(self) -> DecodeProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._bar.stop()  # draws the final state

    def advance(self) -> None:
        """One more file done."""
        self._bar.advance(self._task)
        now = time.monotonic()
        if now - self._drawn >= self.REDRAW_S:
            self._drawn = now
            self._bar.refresh()


@dataclass
class Summary:
    """Counts for the end-of-run report."""

    files: int = 0
    decoded: int = 0  # decoded in this run
    reused: int = 0  # unchanged since the last run
    images: int = 0
    unlabeled: int = 0
    label_rows: int = 0  # data rows of the labels CSV (0 with labels: folders)
    unused_label_rows: list[int] = field(default_factory=list)  # those that labelled no image (row numbers)
    pruned: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    quarantined: Counter[str] = field(default_factory=Counter)
    overview: Overview = field(default_factory=Overview)  # classes, patients, splits

    def render(self) -> None:
        """Print the one-screen summary table, then the data set's warnings."""
        table = Table(title="ingest summary", show_header=False, title_justify="left")
        table.add_row("source files", str(self.files))
        table.add_row("decoded now / reused", f"{self.decoded} / {self.reused}")
        table.add_row("images in manifest", str(self.images))
        table.add_row("unlabeled images", str(self.unlabeled))
        table.add_row("stale stored images removed", str(self.pruned))
        for title, counts in (("skipped", self.skipped), ("quarantined", self.quarantined)):
            table.add_row(f"[bold]{title}[/]", str(sum(counts.values())))
            for reason, count in sorted(counts.items()):
                table.add_row(f"  {reason}", str(count))
        for title, value in self.overview.rows():
            table.add_row(title, value)
        console.print(table)
        for line in [*self.label_warnings(), *self.overview.warnings()]:
            console.print(f"[bold yellow]warning:[/] {line}")

    def label_warnings(self) -> list[str]:
        """Loud lines when the labels reach only part of the archive: unlabeled images are left out of
        training, and a CSV row that labels nothing is usually a wrong path."""
        lines = []
        if self.unlabeled:
            where = (
                f"no row of {self.overview.labels_from} names them or a folder above them"
                if self.label_rows
                else "they are not under a class folder"
            )
            lines.append(
                f"{self.unlabeled} of {self.images} images have no label ({where}); they are left out of "
                "training and evaluation"
            )
        if self.unused_label_rows:
            shown = ", ".join(map(str, self.unused_label_rows[:MAX_ROWS_SHOWN]))
            more = len(self.unused_label_rows) - MAX_ROWS_SHOWN
            lines.append(
                f"{len(self.unused_label_rows)} of {self.label_rows} rows of {self.overview.labels_from} "
                f"label no image (data rows {shown}{f', ... +{more}' if more > 0 else ''}): their path "
                "(relative to ingest.source), study_uid or accession matches no source file (a typo, or a "
                "folder prefix such as the source folder's own name?)"
            )
        return lines


def reason_category(reason: str) -> str:
    """The identifier-free category of a reason ("decode failed: <detail>" -> "decode failed")."""
    return reason.split(":", 1)[0]
