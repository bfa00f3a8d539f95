"""Rows/s delivered by the http sink vs a bare httpx loop, to the same local receiver, in one run.

The receiver is a minimal keep-alive HTTP/1.1 server (raw asyncio, in its own process so it
does not share the client's event loop) that answers every request ``200 ok`` and counts them.
For ``paralism`` 1 and 8 the bench sends the same rows:

* **sink** — :class:`sinkflow.sinks.http.HttpSink` driven through the Sink protocol
  (``open`` → ``write`` per batch → ``flush`` → ``close``): row dicts from Arrow, JSON encoding,
  Idempotency-Key header, response classification;
* **bare** — one ``httpx.AsyncClient`` with the same connection limits and N workers posting
  the same JSON bodies (encoded beforehand) with the same headers.

Each side runs ``--rounds`` times alternately; the best round of each is compared, and the
ratio sink/bare is printed (goal: at least 0.8), with the client's CPU time per row of each
(the steadier figure on a busy machine). The receiver's count is checked after each
round so that a lost request fails the bench.

Then the latency from ingest to webhook receipt: the real runtime (streams, engine, catalog,
sink manager with default settings) runs a stateless query into a webhook sink, one row is
ingested every 10 ms with its wall-clock time, and the receiver records how long each row
took to arrive; p50/p99 are printed (goal: p99 under 50 ms).

Usage: ``python bench/http_sink.py [--rows N] [--rounds R] [--latency-rows N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa

from sinkflow.sinks.base import SinkEnv, WriteContext
from sinkflow.sinks.encode import json_documents
from sinkflow.sinks.http import HttpSink
from sinkflow.sinks.registry import parse_properties

BATCH_ROWS = 500


# ----------------------------------------------------------------------------- the receiver


class _Tally:
    """What the receiver saw: how many rows, and for ``/latency`` requests the delay from the
    ``sent`` wall-clock time in the row to its receipt."""

    def __init__(self) -> None:
        self.count = 0
        self.latencies: list[float] = []


def _reply(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: text/plain\r\n\r\n%s" % (len(body), body)


async def _serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tally: _Tally) -> None:
    ok = _reply(b"ok")
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length) if length else b""
            if head.startswith(b"GET /count"):
                writer.write(_reply(str(tally.count).encode()))
            elif head.startswith(b"GET /latencies"):
                writer.write(_reply(json.dumps(tally.latencies).encode()))
            else:
                if head.startswith(b"POST /latency"):
                    tally.latencies.append(time.time() - json.loads(body)["sent"])
                tally.count += 1
                writer.write(ok)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _receiver(port: int, ready: Any) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # the plain asyncio loop is fast enough to be the baseline's limit too
        pass

    async def main() -> None:
        tally = _Tally()
        server = await asyncio.start_server(
            lambda r, w: _serve_connection(r, w, tally), "127.0.0.1", port, backlog=1024
        )
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ----------------------------------------------------------------------------- the two senders


def make_batches(rows: int) -> list[pa.RecordBatch]:
    """Result rows shaped like the spec's car query output."""
    out = []
    for start in range(0, rows, BATCH_ROWS):
        n = min(BATCH_ROWS, rows - start)
        ids = range(start, start + n)
        out.append(
            pa.record_batch(
                {
                    "time": pa.array([1_642_932_000_000 + i * 2000 for i in ids], pa.timestamp("ms")),
                    "cid": [f"c{i % 100:05d}" for i in ids],
                    "speed_kmh": [40.0 + (i % 70) * 0.5 for i in ids],
                    "total_km": [1000.0 + i for i in ids],
                    "gas_percent": [50.5] * n,
                    "locked": [i % 2 == 0 for i in ids],
                    "in_use": [i % 3 == 0 for i in ids],
                }
            )
        )
    return out


async def run_sink(url: str, batches: list[pa.RecordBatch], paralism: int) -> None:
    config = parse_properties("http", {"url": url, "paralism": paralism})
    sink = HttpSink(config, SinkEnv("bench", "bench", batches[0].schema))
    await sink.open()
    offset = 0
    for epoch, batch in enumerate(batches, start=1):
        await sink.write(batch, WriteContext("bench", epoch, first_row=offset))
        await sink.flush(epoch)
        offset += batch.num_rows
    await sink.close()


async def run_bare(url: str, bodies: list[bytes], paralism: int) -> None:
    limits = httpx.Limits(max_connections=paralism, max_keepalive_connections=paralism)
    async with httpx.AsyncClient(timeout=10.0, limits=limits) as client:
        for start in range(0, len(bodies), BATCH_ROWS):  # same batch boundaries as the sink sees
            indexes = iter(range(start, min(start + BATCH_ROWS, len(bodies))))

            async def worker(indexes: Iterator[int] = indexes) -> None:
                for i in indexes:
                    headers = {"Content-Type": "application/json", "Idempotency-Key": f"bench-{i}"}
                    response = await client.post(url, content=bodies[i], headers=headers)
                    response.raise_for_status()

            await asyncio.gather(*(worker() for _ in range(paralism)))


async def timed(
    run: Callable[[], Coroutine[Any, Any, None]], rows: int, base: str, expected: list[int]
) -> tuple[float, float]:
    """(rows/s, client CPU µs per row) of one run; checks that the receiver counted exactly
    ``rows`` more requests. CPU time is the sending process's only, so it is far less
    sensitive than wall time to other work on a shared machine."""
    started, cpu_started = time.perf_counter(), time.process_time()
    await run()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    async with httpx.AsyncClient() as client:
        count = int((await client.get(f"{base}/count")).text)
    expected[0] += rows
    if count != expected[0]:
        raise SystemExit(f"receiver counted {count} requests, expected {expected[0]}")
    return rows / elapsed, cpu / rows * 1e6


async def bench(rows: int, rounds: int, port: int) -> None:
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/ingest"
    batches = make_batches(rows)
    bodies = [doc for batch in batches for doc in json_documents(batch)]
    expected = [0]
    print(f"{rows} rows per round, best of {rounds} alternating rounds, batches of {BATCH_ROWS} rows")
    print(
        f"{'paralism':>8} {'bare rows/s':>12} {'sink rows/s':>12} {'ratio':>6}"
        f" {'bare cpu µs/row':>16} {'sink cpu µs/row':>16} {'cpu ratio':>9}"
    )
    for paralism in (1, 8):
        bare: list[tuple[float, float]] = []
        sink: list[tuple[float, float]] = []
        for _ in range(rounds):
            bare.append(await timed(partial(run_bare, url, bodies, paralism), rows, base, expected))
            sink.append(await timed(partial(run_sink, url, batches, paralism), rows, base, expected))
        bare_rate, sink_rate = max(r for r, _ in bare), max(r for r, _ in sink)
        bare_cpu, sink_cpu = min(c for _, c in bare), min(c for _, c in sink)
        print(
            f"{paralism:>8} {bare_rate:>12,.0f} {sink_rate:>12,.0f} {sink_rate / bare_rate:>6.2f}"
            f" {bare_cpu:>16,.0f} {sink_cpu:>16,.0f} {bare_cpu / sink_cpu:>9.2f}"
        )
    print("ratio = sink rows/s ÷ bare rows/s (goal ≥ 0.8); cpu ratio = bare ÷ sink client CPU per row")


async def latency(port: int, rows: int, interval: float) -> None:
    """Ingest → webhook receipt through the real runtime: a stream, a stateless streaming query,
    a webhook sink with the default settings; one row ingested every ``interval`` seconds."""
    from sinkflow.catalog import Catalog
    from sinkflow.engine import Engine
    from sinkflow.runtime.manager import SinkDefinition, SinkManager
    from sinkflow.streams.store import StreamSettings, StreamStore
    from sinkflow.streams.types import Column, parse_type

    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data_dir:
        store = StreamStore(Path(data_dir))
        catalog = Catalog(Path(data_dir))
        manager = SinkManager(Engine(store), store, catalog)
        await manager.start()
        try:
            columns = [Column("id", parse_type("int64")), Column("sent", parse_type("float64"))]
            events = store.create("events", columns, StreamSettings())
            sql = "select id, sent from events where id >= 0"
            await manager.create(SinkDefinition("latency", sql, "webhook", properties={"url": f"{base}/latency"}))
            await asyncio.sleep(0.5)  # let the pipeline start before the clock runs
            for i in range(rows):
                events.append_rows(["id", "sent"], [[i, time.time()]])
                await asyncio.sleep(interval)
            async with httpx.AsyncClient() as client:
                for _ in range(200):
                    seen: list[float] = json.loads((await client.get(f"{base}/latencies")).text)
                    if len(seen) >= rows:
                        break
                    await asyncio.sleep(0.05)
        finally:
            await manager.stop()
            catalog.close()
            store.close()
    if len(seen) != rows:
        raise SystemExit(f"the receiver got {len(seen)} of {rows} rows")
    ms = sorted(x * 1000 for x in seen)
    p50, p99 = ms[len(ms) // 2], ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(f"\ningest → webhook receipt, stateless query, {rows} rows one every {interval * 1000:g} ms:")
    print(f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms (goal: p99 under 50 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-rows", type=int, default=300)
    args = parser.parse_args()
    port = _free_port()
    ready = multiprocessing.Event()
    receiver = multiprocessing.Process(target=_receiver, args=(port, ready), daemon=True)
    receiver.start()
    try:
        if not ready.wait(10):
            raise SystemExit("the receiver did not start")
        asyncio.run(bench(args.rows, args.rounds, port))
        asyncio.run(latency(port, args.latency_rows, 0.01))
    finally:
        receiver.terminate()
        receiver.join()


if __name__ == "__main__":
    main()
