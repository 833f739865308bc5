"""What `radflow pull` remembers between runs, per PACS: the instances it holds, when it last
completed, and the server's change-feed cursor. Kept in `paths.private/pacs_pull.json` (operator-only).

Instances are remembered by the opaque names their files carry (`part10.opaque_name` of the SOP
Instance UID), so even this private file holds no UID. An instance deleted from the archive by hand
(an erasure request) stays held: it is not fetched back.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

from tasks.common.atomic import write_text

STATE_FILE = "pacs_pull.json"
VERSION = 1


@dataclass
class ServerState:
    """One PACS's pull state."""

    held: set[str] = field(default_factory=set)  # opaque names of the instances already pulled
    last_complete: dt.date | None = None  # date of the last pull that fetched everything it found
    cursor: int | None = None  # change-feed position at the start of that pull


def load_state(private: Path, url: str) -> ServerState:
    """This PACS's state, or a fresh one (first pull, or state of another format)."""
    try:
        data = json.loads((private / STATE_FILE).read_text())
        entry = data["servers"][url] if data.get("version") == VERSION else None
    except (OSError, ValueError, KeyError):
        entry = None
    if not entry:
        return ServerState()
    last = entry.get("last_complete")
    return ServerState(
        set(entry.get("held", [])), dt.date.fromisoformat(last) if last else None, entry.get("cursor")
    )


def save_state(private: Path, url: str, state: ServerState) -> None:
    """Write this PACS's entry atomically, keeping the other servers' entries."""
    path = private / STATE_FILE
    try:
        data = json.loads(path.read_text())
        servers = data["servers"] if data.get("version") == VERSION else {}
    except (OSError, ValueError, KeyError):
        servers = {}
    servers[url] = {
        "held": sorted(state.held),
        "last_complete": state.last_complete.isoformat() if state.last_complete else None,
        "cursor": state.cursor,
    }
    write_text(path, json.dumps({"version": VERSION, "servers": servers}, separators=(",", ":")))
