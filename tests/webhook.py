"""A webhook receiver for the notification tests: a real HTTP server on 127.0.0.1 only."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebhookReceiver:
    """A tiny HTTP server on loopback that records every POSTed JSON body (use it as a context manager)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.arrived = threading.Condition()
        received, arrived = self.events, self.arrived

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                with arrived:
                    received.append(json.loads(self.rfile.read(length)))
                    arrived.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def wait_for_events(self, count: int, timeout_s: float) -> list[dict[str, Any]]:
        """Block until `count` events have arrived (a flow's hooks run after its final state is set) or
        `timeout_s` passed; returns the events so far."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.events) >= count, timeout=timeout_s)
            return list(self.events)

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
