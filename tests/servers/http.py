"""A recording HTTP endpoint for tests, served by a real pytest-httpserver on 127.0.0.1.

:class:`RecordingEndpoint` is a request handler: it keeps every request it is sent (method,
path, headers, body, arrival time, the status it answered), in arrival order, and answers
``status`` or whatever its ``answer`` callback decides for a request, optionally after a
``delay``. It counts how many requests it was serving at once. It is thread-safe: a threaded
server may call it concurrently.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response


@dataclass
class Recorded:
    """One request as it arrived; ``index`` is its position among the endpoint's requests (0 first)."""

    index: int
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    #: The status the endpoint answered (0 while the request is being answered).
    status: int = 0

    def json(self) -> Any:
        """The body parsed as JSON (raises ValueError when it is not)."""
        return json.loads(self.body)


@dataclass
class RecordingEndpoint:
    """Records every request; answers ``status`` (or ``answer(request)`` when that is not None), after ``delay``.

    :attr:`requests` holds every request, :attr:`received` only those answered with a 2xx status.
    """

    status: int = 200
    delay: float = 0.0
    answer: Callable[[Recorded], Response | None] | None = None
    requests: list[Recorded] = field(default_factory=list)
    received: list[Recorded] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    #: The endpoint's URL once :meth:`mount` served it.
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def mount(self, server: HTTPServer, path: str = "/api", method: str | None = None) -> str:
        """Serve this endpoint at ``path`` (any method unless ``method``) of ``server``; returns its URL."""
        server.expect_request(path, method=method or "__ALL").respond_with_handler(self)
        self.url = server.url_for(path)
        return self.url

    def __call__(self, request: Request) -> Response:
        with self._lock:
            rec = Recorded(len(self.requests), request.method, request.path, dict(request.headers),
                           request.get_data(), time.monotonic())
            self.requests.append(rec)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                time.sleep(self.delay)  # this handler runs in the server's thread, not the test's loop
            response = self.answer(rec) if self.answer is not None else None
            if response is None:
                response = Response("accepted", status=self.status)
            with self._lock:
                rec.status = response.status_code
                if response.status_code < 300:
                    self.received.append(rec)
            return response
        finally:
            with self._lock:
                self.in_flight -= 1

    def bodies(self) -> list[Any]:
        """The JSON bodies of the accepted (2xx) requests, in arrival order."""
        with self._lock:
            return [r.json() for r in self.received]
