"""What the PACS commands print, and what the protocol libraries underneath them may log.

Output goes to stderr and carries counts, sizes, AE titles and addresses, never an identifier. The
libraries' own INFO lines would not: pynetdicom's name UIDs and peers, dicomweb-client's and urllib3's
show request URLs, which carry study and instance UIDs.
"""

from __future__ import annotations

import logging

from rich.console import Console

console = Console(stderr=True)
QUIETED = ("pynetdicom", "dicomweb_client", "urllib3")


def quiet_library_logs() -> None:
    """Raise the protocol libraries' log level to WARNING; called where a PACS command starts (pull,
    push, receive), never at import, so that importing radflow changes no one's logging."""
    for name in QUIETED:
        logging.getLogger(name).setLevel(logging.WARNING)
