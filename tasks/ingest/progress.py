"""What the operator sees: a progress bar with files/s while decoding, then a one-screen summary.

Neither ever prints a path or an identifier: the summary groups reasons by their category (the text
before the first colon), which ingest always phrases without file names or header values.
"""

from __future__ import annotations

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

console = Console(stderr=True)


class FilesPerSecond(ProgressColumn):
    """Decoding speed in files per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} files/s" if speed else "- files/s", style="cyan")


def progress_bar() -> Progress:
    """The bar shown while files decode."""
    return Progress(
        TextColumn("[bold]ingest[/] decoding"),
        BarColumn(),
        MofNCompleteColumn(),
        FilesPerSecond(),
        TimeElapsedColumn(),
        console=console,
    )


@dataclass
class Summary:
    """Counts for the end-of-run report."""

    files: int = 0
    decoded: int = 0  # decoded in this run
    reused: int = 0  # unchanged since the last run
    images: int = 0
    unlabeled: int = 0
    pruned: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    quarantined: Counter[str] = field(default_factory=Counter)

    def render(self) -> None:
        """Print the one-screen summary table."""
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
        console.print(table)


def reason_category(reason: str) -> str:
    """The identifier-free category of a reason ("decode failed: <detail>" -> "decode failed")."""
    return reason.split(":", 1)[0]
