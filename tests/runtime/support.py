"""Shared helpers of the runtime tests: a runtime over real parts, waiting for a condition."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

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


@asynccontextmanager
async def open_runtime(data_dir: Path) -> AsyncIterator[Runtime]:
    """A started runtime over real streams, engine and catalog in ``data_dir``, stopped and closed
    on leaving the block."""
    store = StreamStore(data_dir)
    engine = Engine(store)
    catalog = Catalog(data_dir)
    manager = SinkManager(engine, store, catalog, FAST)
    await manager.start()
    try:
        yield Runtime(store, engine, catalog, manager, data_dir)
    finally:
        await manager.stop()
        catalog.close()
        store.close()


async def eventually(check: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Wait until ``check()`` holds; fail naming ``what`` when it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
