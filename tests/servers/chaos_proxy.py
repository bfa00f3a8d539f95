"""A fault-injecting TCP proxy on 127.0.0.1, for chaos tests between a sink and its server.

:class:`ChaosProxy` forwards every connection it accepts to ``127.0.0.1:target_port`` and, as
its :class:`Faults` say at each moment, adds latency, resets connections (TCP RST), blackholes
them (holds the bytes, forwards nothing), forwards slowly (a byte rate per direction), or
refuses and cuts every connection (the server "is down" while it keeps its data). It runs its
own event loop in a thread, so the code under test may run in the test's loop or in another
process. Random choices come from a seeded generator: a run can be repeated.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
from dataclasses import dataclass, field, replace

from tests.servers.process import free_port

_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Faults:
    """What the proxy does to traffic now. The default forwards faithfully."""

    #: Seconds added before each chunk is forwarded.
    latency: float = 0.0
    #: Chance that forwarding a chunk resets its connection instead.
    reset_chance: float = 0.0
    #: Hold every byte (connections stay open, nothing arrives) until lifted.
    blackhole: bool = False
    #: Forward at most this many bytes per second in each direction (None: no limit).
    bytes_per_second: int | None = None
    #: Refuse new connections (reset at once); :meth:`ChaosProxy.set` with it also cuts open ones.
    down: bool = False


@dataclass
class ProxyStats:
    connections: int = 0
    resets: int = 0
    bytes_forwarded: int = 0


@dataclass(eq=False)
class _Pair:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class ChaosProxy:
    """Listens on ``port`` (127.0.0.1) and forwards to ``target_port``; see the module docstring."""

    def __init__(self, target_port: int, *, port: int | None = None, seed: int = 0) -> None:
        self.target_port = target_port
        self.port = port or free_port()
        self.faults = Faults()
        self.stats = ProxyStats()
        self._rng = random.Random(seed)
        self._pairs: set[_Pair] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"chaos-proxy:{self.port}", daemon=True)
        self._server: asyncio.Server | None = None

    # -- control (from any thread) -----------------------------------------------------------

    def start(self) -> ChaosProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        """Close the listener and every connection, and end the proxy's thread."""
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def set(self, **changes: object) -> None:
        """Change the faults (``Faults`` field names); turning ``down`` on cuts open connections."""
        self.faults = replace(self.faults, **changes)  # type: ignore[arg-type]
        if self.faults.down:
            self.cut()

    def heal(self) -> None:
        """Back to faithful forwarding."""
        self.faults = Faults()

    def cut(self) -> None:
        """Reset every open connection now."""
        self._call(self._reset_all())

    def __enter__(self) -> ChaosProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _call(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    # -- the proxy's loop ----------------------------------------------------------------------

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._reset_all()

    async def _reset_all(self) -> None:
        for pair in list(self._pairs):
            self._reset(pair)

    def _reset(self, pair: _Pair) -> None:
        if pair not in self._pairs:
            return
        self._pairs.discard(pair)
        self.stats.resets += 1
        for writer in (pair.client, pair.upstream):
            if writer is not None:
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    # Linger 0: close() sends RST, as a crashed peer or a middlebox would.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
        for task in pair.tasks:
            task.cancel()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pair = _Pair(writer)
        self._pairs.add(pair)
        self.stats.connections += 1
        if self.faults.down:
            self._reset(pair)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            self._reset(pair)
            return
        pair.upstream = up_writer
        pair.tasks = [asyncio.create_task(self._pump(reader, up_writer, pair)),
                      asyncio.create_task(self._pump(up_reader, writer, pair))]
        await asyncio.gather(*pair.tasks, return_exceptions=True)
        self._pairs.discard(pair)
        for w in (writer, up_writer):
            w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pair: _Pair) -> None:
        try:
            while True:
                faults = self.faults
                limit = _CHUNK if faults.bytes_per_second is None else max(1, faults.bytes_per_second // 20)
                data = await reader.read(limit)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                while self.faults.blackhole and pair in self._pairs:
                    await asyncio.sleep(0.05)
                faults = self.faults
                if faults.down or (faults.reset_chance and self._rng.random() < faults.reset_chance):
                    self._reset(pair)
                    return
                if faults.latency:
                    await asyncio.sleep(faults.latency)
                writer.write(data)
                await writer.drain()
                self.stats.bytes_forwarded += len(data)
                if faults.bytes_per_second is not None:
                    await asyncio.sleep(len(data) / faults.bytes_per_second)
        except (ConnectionError, OSError):
            self._reset(pair)
