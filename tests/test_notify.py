"""Notification hooks against a real local HTTP server (tests/webhook.py) and a real command."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

from flows.notify import notify
from flows.settings import RetrainParams
from tests.defaults import settings
from tests.webhook import WebhookReceiver


def settings_with(**changes: Any) -> RetrainParams:
    """params.yaml's retrain section with the given hooks set."""
    return settings("retrain", RetrainParams, **changes)


def test_webhook_and_command_get_the_event(webhook: WebhookReceiver, tmp_path: Path) -> None:
    received = tmp_path / "event.json"
    script = "import sys; open(sys.argv[1], 'wb').write(sys.stdin.buffer.read())"
    settings = settings_with(
        notify_webhook=webhook.url,
        notify_command=shlex.join([sys.executable, "-c", script, str(received)]),
    )
    warnings: list[str] = []
    delivered = notify(settings, "failure", "stage 'train' failed: bad lr", warnings.append, stage="train")
    assert delivered == 2 and warnings == []
    expected = {
        "event": "failure",
        "flow": "retrain",
        "message": "stage 'train' failed: bad lr",
        "stage": "train",
    }
    assert webhook.events == [expected]
    assert json.loads(received.read_text()) == expected


def test_events_not_asked_for_are_not_sent(webhook: WebhookReceiver) -> None:
    settings = settings_with(notify_webhook=webhook.url, notify_on=("failure",))
    assert notify(settings, "promotion", "new champion", print) == 0
    assert webhook.events == []


def test_broken_hooks_warn_without_raising(tmp_path: Path) -> None:
    with WebhookReceiver() as gone:
        dead_url = gone.url  # the server is shut down when the block ends: connection refused
    settings = settings_with(notify_webhook=dead_url, notify_command=f"{tmp_path}/no-such-command")
    warnings: list[str] = []
    assert notify(settings, "failure", "x", warnings.append) == 0
    assert len(warnings) == 2
    assert all(str(tmp_path) not in warning for warning in warnings)
