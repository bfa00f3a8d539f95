"""The cluster of a test module: a new cluster name on the session's Tansu broker, and three
nodes n0, n1, n2 (a module's tests may kill one, its last test then); a Chromium page for the
tests of the console."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from tests.servers.chromium import browser, page, playwright  # noqa: F401 - fixtures (the console's tests)
from tests.servers.process import running
from tests.servers.sinkflow_cluster import ClusterNodes, SinkflowNode
from tests.servers.tansu import TansuBroker, tansu_broker  # noqa: F401 - fixture


@pytest.fixture(scope="module")
def cluster(tansu_broker: TansuBroker, tmp_path_factory: pytest.TempPathFactory) -> ClusterNodes:
    return ClusterNodes(tmp_path_factory.mktemp("cluster"), tansu_broker.bootstrap)


@pytest.fixture(scope="module")
def nodes(cluster: ClusterNodes) -> Iterator[list[SinkflowNode]]:
    with ExitStack() as stack:
        yield [stack.enter_context(running(cluster.node(f"n{i}"))) for i in range(3)]
