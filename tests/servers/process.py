"""What every test server run as a subprocess shares: a free port, starting in its own session
with a log file, waiting for a readiness probe, failing with the log's tail, stopping by pid.

A server module subclasses :class:`ServerProcess` and says only what is its own: the command
line (:meth:`ServerProcess.command`), the readiness probe (:meth:`ServerProcess.ready`), its
config files and, where they differ, its timeouts and log files. :func:`running`
starts a server for a ``with`` block (a fixture's body) and stops it whatever the test did.

Contract: :meth:`ServerProcess.start` returns only once the probe answers, and otherwise
raises :class:`RuntimeError` naming the server and quoting its log, so a test whose server
cannot start fails, never skips. A server started from the main thread is killed by the kernel
when the test process dies (``setpriv --pdeathsig``), so no broker outlives a killed pytest run.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, TypeVar

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_accepts(port: int, host: str = HOST) -> bool:
    """Whether a TCP connection to ``host:port`` is accepted now (the simplest readiness probe)."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _die_with_us() -> list[str]:
    """A command prefix making the kernel SIGKILL the child when the thread that started it dies.

    Only for the main thread: the parent-death signal follows the creating *thread*, and a server
    restarted from a worker thread (``asyncio.to_thread``) must outlive that thread.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None or threading.current_thread() is not threading.main_thread():
        return []
    return [setpriv, "--pdeathsig", "KILL", "--"]


class ServerProcess:
    """One server subprocess on 127.0.0.1, in its own session, writing stdout+stderr to :attr:`log_path`.

    Subclasses set :attr:`name` and implement :meth:`command` and :meth:`ready`; they may change
    :attr:`start_timeout`, :attr:`stop_grace`, :meth:`environment` and :meth:`log_files`.
    :meth:`stop` then :meth:`start` again reuses the same ports and files.
    """

    #: How the server is named in errors.
    name = "server"
    host = HOST
    #: Seconds the readiness probe may take to answer after the process started.
    start_timeout = 30.0
    #: Seconds between SIGTERM and SIGKILL in :meth:`stop`.
    stop_grace = 5.0

    def __init__(self, directory: Path, log_name: str) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.log_path = directory / log_name
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """The command line; raises RuntimeError when the program is not installed."""
        raise NotImplementedError

    def ready(self) -> bool:
        """Whether the running server answers as its clients need it to (called until true)."""
        raise NotImplementedError

    def environment(self) -> dict[str, str] | None:
        """The server's environment (``None``: the test process's own)."""
        return None

    def log_files(self) -> list[Path]:
        """The files whose tails explain a failed start."""
        return [self.log_path]

    def log_tail(self, chars: int = 3000) -> str:
        """The last ``chars`` characters of each log file that exists."""
        return "\n".join(
            path.read_text(errors="replace")[-chars:] for path in self.log_files() if path.exists()
        )

    def start(self) -> None:
        """Start the server and return once :meth:`ready` holds.

        Raises RuntimeError (with the log's tail) when the program is missing, exits, or is not
        ready within :attr:`start_timeout`. A server that did not become ready is stopped before
        the error (or any other, such as a Ctrl-C) propagates: nothing is left running.
        """
        command = self.command()
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [*_die_with_us(), *command],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                env=self.environment(),
                start_new_session=True,  # a Ctrl-C in the terminal goes to pytest, not to the server
            )
        try:
            self._wait_until_ready(self.process)
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            code = process.poll()
            if code is not None:
                raise RuntimeError(f"{self.name} exited with code {code} before it was ready:\n{self.log_tail()}")
            if self.ready():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} was not ready within {self.start_timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop the server by its pid and wait until it is gone: SIGTERM, SIGKILL after :attr:`stop_grace`."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=self.stop_grace)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def kill(self) -> None:
        """``kill -9`` by pid: no shutdown at all, as in a crash."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


class Startable(Protocol):
    """Anything with ``start`` and ``stop``: a :class:`ServerProcess` or an in-process server."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


S = TypeVar("S", bound=Startable)


@contextmanager
def running(server: S) -> Iterator[S]:
    """``server`` started (a failure to start raises, failing the test), stopped on leaving the
    block whatever happened in it. A fixture says ``with running(Server(...)) as server: yield server``."""
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def throwaway(make: Callable[[Path], S], prefix: str) -> Iterator[S]:
    """A server made by ``make(directory)`` in a temporary directory, running for the block and
    removed with its data afterwards (benchmarks start theirs this way)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as directory, running(make(Path(directory))) as server:
        yield server
