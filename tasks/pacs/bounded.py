"""Bounds on what a DICOMweb server may send in one response: bytes, and time for the whole request.

requests' `timeout` bounds each socket read, so a server that trickles a byte now and then (or sends
without end) could hold a pull forever or fill the disk. A response hook (requests' documented
extension point, run before the body is read) wraps the body stream: it counts bytes against a
budget (`pacs.max_instance_mb` per instance expected in the response) and arms a timer that shuts the
socket down when `pacs.request_deadline_s` has passed since the request was sent, which ends even a
read that is blocked. The transport turns either into a one-line error naming the limit. Answers
that are not instances (QIDO-RS JSON pages, the change feed) get a fixed budget, QUERY_BYTES.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import requests

from tasks.common.errors import RadflowError
from tasks.pacs.settings import MB, PacsSettings

QUERY_BYTES = 64 * MB  # a JSON answer (one QIDO-RS page of <= 1000 matches, a change-feed page) is far less


class ResponseTooLarge(RadflowError):
    """A response went over its byte budget (final: the same request would do it again)."""


class ResponseLimits:
    """The byte budget and deadline of the transport's requests (one at a time, as a pull makes them)."""

    def __init__(self, url: str, settings: PacsSettings) -> None:
        self.url = url
        self.settings = settings
        self.instances = 0  # instances the responses carry now (a whole series: its size); 0: JSON
        self.expired = threading.Event()  # set when a deadline cut a response short

    @contextlib.contextmanager
    def expecting(self, instances: int) -> Iterator[None]:
        """Budget the responses inside for `instances` instances (a series in one multipart response)."""
        self.instances = max(1, instances)
        try:
            yield
        finally:
            self.instances = 0

    def hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        """requests' "response" hook: bound the body of `response` before anyone reads it."""
        self.expired.clear()
        budget = self.instances * self.settings.max_instance_bytes if self.instances else QUERY_BYTES
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > budget:
            response.close()
            raise self._too_large(int(length))
        left_s = max(0.0, self.settings.request_deadline_s - response.elapsed.total_seconds())
        response.raw = _BoundedBody(response.raw, budget, left_s, self)
        return response

    def deadline_error(self, action: str) -> RadflowError:
        return RadflowError(
            f"PACS {self.url} did not finish sending within pacs.request_deadline_s="
            f"{self.settings.request_deadline_s:g} s ({action}); raise the limit for larger studies"
        )

    def _too_large(self, size: int) -> ResponseTooLarge:
        if not self.instances:
            return ResponseTooLarge(f"PACS {self.url} sent an answer of over {QUERY_BYTES // MB} MB; refused")
        per = "an instance" if self.instances == 1 else f"{self.instances} instances"
        return ResponseTooLarge(
            f"PACS {self.url} sent more than pacs.max_instance_mb={self.settings.max_instance_mb:g} MB per "
            f"instance ({size:,} bytes for {per}); refused"
        )


class _BoundedBody:
    """urllib3's response body, read through `stream()` (as requests does) with a byte count and a
    deadline; every other attribute is the wrapped response's."""

    def __init__(self, raw: Any, budget: int, left_s: float, limits: ResponseLimits) -> None:
        self._raw, self._budget, self._left_s, self._limits = raw, budget, left_s, limits

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def stream(self, amt: int | None = None, decode_content: bool | None = None) -> Iterator[bytes]:
        reading = threading.Event()
        reading.set()
        timer = threading.Timer(self._left_s, self._cut, [reading])
        timer.daemon = True
        timer.start()
        received = 0
        try:
            for chunk in self._raw.stream(amt, decode_content=decode_content):
                received += len(chunk)
                if received > self._budget:
                    raise self._limits._too_large(received)
                yield chunk
        finally:
            reading.clear()
            timer.cancel()

    def _cut(self, reading: threading.Event) -> None:
        """The deadline passed: shut the socket down (unblocks a read in progress) if still reading."""
        if not reading.is_set():
            return
        self._limits.expired.set()
        sock = getattr(getattr(self._raw, "connection", None), "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
