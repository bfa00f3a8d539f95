"""Both catalogs implement the whole CatalogStore protocol.

ClusterCatalog names CatalogStore as its base, so a method it forgot would silently fall back to
the protocol's empty body and answer None (every query failed in cluster mode once, when SQL
functions were added to the embedded catalog only)."""

from __future__ import annotations

import inspect

from sinkflow.catalog import Catalog, CatalogStore
from sinkflow.cluster.catalog import ClusterCatalog


def test_every_protocol_method_is_implemented_by_both_catalogs() -> None:
    methods = [name for name, _ in inspect.getmembers(CatalogStore, inspect.isfunction) if not name.startswith("_")]
    assert "functions" in methods and "sinks" in methods
    for catalog in (Catalog, ClusterCatalog):
        missing = [name for name in methods if getattr(catalog, name) is getattr(CatalogStore, name)]
        assert missing == [], f"{catalog.__name__} does not implement {missing}"
