"""Shared helpers of the runtime tests: a runtime over real parts, a recording HTTP receiver."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from sinkflow.catalog import Catalog
from sinkflow.engine import Engine
from sinkflow.runtime.manager import SinkManager
from sinkflow.runtime.pipeline import RuntimeSettings
from sinkflow.streams.store import StreamStore

FAST = RuntimeSettings(checkpoint_interval=0.1, step_timeout=0.05)


@dataclass
class Runtime:
    store: StreamStore
    engine: Engine
    catalog: Catalog
    sinks: SinkManager
    data_dir: Path


@dataclass
class Receiver:
    """Records every request; ``respond`` decides each answer (default 200)."""

    server: HTTPServer
    requests: list[dict[str, Any]] = field(default_factory=list)
    respond: Callable[[dict[str, Any], int], Response] = lambda body, n: Response("ok", 200)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return self.server.url_for("/hook")

    def handle(self, request: Request) -> Response:
        text = request.get_data(as_text=True)
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = text
        with self.lock:
            n = len(self.requests)
            self.requests.append({"body": body, "headers": dict(request.headers), "at": time.monotonic()})
        return self.respond(body, n)

    def bodies(self) -> list[Any]:
        with self.lock:
            return [r["body"] for r in self.requests]


async def eventually(check: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Wait until ``check()`` holds; fail naming ``what`` when it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
