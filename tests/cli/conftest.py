"""A real sinkflow server subprocess (no demo data) shared by the CLI tests of a module."""

from tests.servers.sinkflow import server  # noqa: F401 - fixture
