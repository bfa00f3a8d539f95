"""A sinkflow server's pipeline parts in a temporary directory (a store computing column DEFAULTs,
as the server's does), for the pipeline benches and bench/compat.py."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sinkflow.catalog import Catalog
from sinkflow.engine import Engine
from sinkflow.runtime.manager import SinkManager
from sinkflow.runtime.sql_pipelines import SqlPipelines
from sinkflow.sql.defaults import compile_default
from sinkflow.streams.store import StreamStore


@asynccontextmanager
async def temporary_pipelines(prefix: str) -> AsyncIterator[SqlPipelines]:
    """:class:`SqlPipelines` over a fresh store and catalog, as the server builds them; stopped
    and removed with their data afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as directory:
        store = StreamStore(Path(directory), defaults=compile_default)
        catalog = Catalog(Path(directory))
        pipelines = SqlPipelines(SinkManager(Engine(store), store, catalog))
        try:
            yield pipelines
        finally:
            await pipelines.sinks.stop()
            await pipelines.stop()
            catalog.close()
            store.close()
