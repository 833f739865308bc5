"""Tell people when a retrain fails or promotes a model: a command and/or a webhook, both optional.

The event is a small JSON object without identifiers. A broken hook is logged and never fails the run:
the run's own outcome matters more than the message about it.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import urllib.request
from collections.abc import Callable
from typing import Any, Literal

from flows.settings import RetrainParams

Event = Literal["failure", "promotion"]
HOOK_TIMEOUT_S = 30


def notify(
    settings: RetrainParams, event: Event, message: str, warn: Callable[[str], None], **details: Any
) -> int:
    """Send `event` to every configured hook; returns how many hooks accepted it."""
    if event not in settings.notify_on:
        return 0
    payload = json.dumps({"event": event, "flow": "retrain", "message": message, **details}).encode()
    delivered = 0
    if settings.notify_command:
        try:
            subprocess.run(
                shlex.split(settings.notify_command),
                input=payload,
                check=True,
                timeout=HOOK_TIMEOUT_S,
                capture_output=True,
            )
            delivered += 1
        except (OSError, subprocess.SubprocessError) as error:
            warn(f"notify_command failed for {event} event: {type(error).__name__}")
    if settings.notify_webhook:
        request = urllib.request.Request(
            settings.notify_webhook,
            data=payload,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=HOOK_TIMEOUT_S) as response:
                response.read()
            delivered += 1
        except OSError as error:  # URLError and HTTPError are OSErrors
            warn(f"notify_webhook failed for {event} event: {type(error).__name__}")
    return delivered
