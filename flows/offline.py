"""Offline by design: neither radflow's Prefect server, its clients nor the DVC commands they run phone home.

Hospital networks are offline (docs/DESIGN_NOTES.md); DVC's usage analytics is included because each dvc
command a flow runs would otherwise fork a daemon trying to send a report.
"""

from __future__ import annotations

import os

OFFLINE_ENV = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "DVC_NO_ANALYTICS": "1"}


def offline_defaults() -> None:
    """Make this process (and the servers and flows it starts) offline unless told otherwise."""
    for name, value in OFFLINE_ENV.items():
        os.environ.setdefault(name, value)
