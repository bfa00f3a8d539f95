"""Fixtures: a sink runtime over real streams, engine and catalog in a temporary data dir, and a
real HTTP receiver that records what it is sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from sinkflow.catalog import Catalog
from sinkflow.engine import Engine
from sinkflow.runtime.manager import SinkManager
from sinkflow.streams.store import StreamStore
from tests.runtime.support import FAST, Receiver, Runtime


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    data = tmp_path / "data"
    store = StreamStore(data)
    engine = Engine(store)
    catalog = Catalog(data)
    manager = SinkManager(engine, store, catalog, FAST)
    await manager.start()
    yield Runtime(store, engine, catalog, manager, data)
    await manager.stop()
    catalog.close()
    store.close()


@pytest.fixture
def receiver(httpserver: HTTPServer) -> Receiver:
    rec = Receiver(httpserver)
    httpserver.expect_request("/hook").respond_with_handler(rec.handle)
    return rec
