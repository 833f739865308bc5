"""Notification hooks against a real local HTTP server (127.0.0.1 only) and a real command."""

from __future__ import annotations

import json
import shlex
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from flows.notify import notify
from flows.settings import RetrainParams
from tests.defaults import settings


class WebhookReceiver:
    """A tiny HTTP server on loopback that records every POSTed JSON body."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        received = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


def settings_with(**changes: Any) -> RetrainParams:
    """params.yaml's retrain section with the given hooks set."""
    return settings("retrain", RetrainParams, **changes)


def test_webhook_and_command_get_the_event(receiver: WebhookReceiver, tmp_path: Path) -> None:
    received = tmp_path / "event.json"
    script = "import sys; open(sys.argv[1], 'wb').write(sys.stdin.buffer.read())"
    settings = settings_with(
        notify_webhook=receiver.url,
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
    assert receiver.events == [expected]
    assert json.loads(received.read_text()) == expected


def test_events_not_asked_for_are_not_sent(receiver: WebhookReceiver) -> None:
    settings = settings_with(notify_webhook=receiver.url, notify_on=("failure",))
    assert notify(settings, "promotion", "new champion", print) == 0
    assert receiver.events == []


def test_broken_hooks_warn_without_raising(tmp_path: Path) -> None:
    with WebhookReceiver() as gone:
        dead_url = gone.url  # the server is shut down when the block ends: connection refused
    settings = settings_with(notify_webhook=dead_url, notify_command=f"{tmp_path}/no-such-command")
    warnings: list[str] = []
    assert notify(settings, "failure", "x", warnings.append) == 0
    assert len(warnings) == 2
    assert all(str(tmp_path) not in warning for warning in warnings)
