"""An HTTP relay in front of a test server that lets a set number of matching requests through, then
holds the next ones until the test is done: a client under test is stopped mid-run at a known point by
an event (`held`), instead of a race between its speed and a polling loop.

Loopback only; requests are relayed whole (the test servers' responses are small).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

import requests

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-encoding", "content-length", "host"}


class HttpGate:
    """`with HttpGate(backend, allow, match) as gate:` relays `gate.url` to `backend`; the request after
    the `allow`-th one that `match(method, path)` accepts is held (and `gate.held` set) until the exit."""

    def __init__(self, backend: str, allow: int, match: Callable[[str, str], bool]) -> None:
        self.backend, self.allow, self.match = backend.rstrip("/"), allow, match
        self.held, self._release, self._lock, self._passed = (
            threading.Event(),
            threading.Event(),
            threading.Lock(),
            0,
        )
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> HttpGate:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=30)

    def _admit(self, method: str, path: str) -> bool:
        """Whether this request goes through now; False once the gate has been released (test over)."""
        if not self.match(method, path):
            return True
        with self._lock:
            self._passed += 1
            if self._passed <= self.allow:
                return True
        self.held.set()
        self._release.wait()
        return False

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        gate = self

        class Relay(BaseHTTPRequestHandler):
            def _relay(self) -> None:
                if not gate._admit(self.command, self.path):
                    self.send_error(503, "gate closed")
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                answer = requests.request(
                    self.command, gate.backend + self.path, headers=headers, data=body, timeout=60
                )
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_PUT = do_DELETE = _relay

            def log_message(self, format: str, *args: object) -> None:  # quiet: no per-request lines
                pass

        return Relay
