"""The shared server-process handling: a server that cannot start is an error carrying its log,
and nothing it started is left running, however it ended."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.servers.process import ServerProcess, free_port, port_accepts, running


class Shell(ServerProcess):
    """A shell script standing in for a server; ready once ``ready_file`` exists."""

    name = "shell-server"
    start_timeout = 1.0
    stop_grace = 0.2

    def __init__(self, directory: Path, script: str) -> None:
        super().__init__(directory, "shell.log")
        self.script = script
        self.ready_file = directory / "ready"

    def command(self) -> list[str]:
        return ["sh", "-c", self.script]

    def ready(self) -> bool:
        return self.ready_file.exists()


def gone(pid: int) -> bool:
    """Whether no process (not even an unreaped one of ours) has this pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_server_that_exits_is_an_error_quoting_its_log(tmp_path: Path) -> None:
    server = Shell(tmp_path, "echo 'bad config line 7'; exit 3")
    with pytest.raises(RuntimeError) as failure:
        server.start()
    assert "shell-server exited with code 3" in str(failure.value)
    assert "bad config line 7" in str(failure.value)
    assert server.process is None


def test_a_server_never_ready_is_stopped_and_is_an_error(tmp_path: Path) -> None:
    server = Shell(tmp_path, "echo 'still warming up'; exec sleep 30")
    with pytest.raises(RuntimeError) as failure:
        with running(server):
            pytest.fail("running() must not enter its block for a server that is not ready")
    assert "shell-server was not ready within 1.0s" in str(failure.value)
    assert "still warming up" in str(failure.value)
    assert server.process is None


def test_stop_kills_a_server_that_ignores_sigterm(tmp_path: Path) -> None:
    server = Shell(tmp_path, f"trap '' TERM; touch {tmp_path / 'ready'}; while :; do sleep 0.05; done")
    with running(server):
        assert server.process is not None
        pid = server.process.pid
    assert server.process is None and gone(pid)


def test_free_port_is_free_and_on_loopback() -> None:
    port = free_port()
    assert not port_accepts(port)
