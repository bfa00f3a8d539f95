"""Rows/s delivered by the http sink vs a bare aiohttp loop, to the same local receiver, in one run.

The receiver is a minimal keep-alive HTTP/1.1 server (raw asyncio, in its own process so it
does not share the client's event loop) that answers every request ``200 ok`` and counts them.
For ``paralism`` 1 and 8 the bench sends the same rows:

* **sink** — :class:`sinkflow.sinks.http.HttpSink` driven through the Sink protocol
  (``open`` → ``write`` per batch → ``flush`` → ``close``): row dicts from Arrow, JSON encoding,
  Idempotency-Key header, response classification;
* **bare** — one ``aiohttp.ClientSession`` with the same connection limit and N workers posting
  the same JSON bodies (encoded beforehand) with the same headers;
* **httpx** — the same loop on one ``httpx.AsyncClient``: the client the sinks used before
  (their rows/s was 0.99 of it), so "× httpx" is the speed-up over the previous sinks;
* **limit** — N bare asyncio connections writing HTTP/1.1 requests and reading the answers
  by hand: what this machine allows a Python client at all.

Each side runs ``--rounds`` times alternately; the best round of each is compared, and the
ratio sink/bare is printed (goal: at least 0.8), with the client's CPU time per row of the
sink and the bare aiohttp loop (the steadier figure on a busy machine). The receiver's count is checked after each
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

import aiohttp
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


def _batches_of(count: int) -> Iterator[range]:
    """Row indexes in the sink's batch boundaries, so every sender waits at the same points."""
    for start in range(0, count, BATCH_ROWS):
        yield range(start, min(start + BATCH_ROWS, count))


async def run_bare(url: str, bodies: list[bytes], paralism: int) -> None:
    connector = aiohttp.TCPConnector(limit=paralism)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10.0)) as session:
        for rows in _batches_of(len(bodies)):
            indexes = iter(rows)

            async def worker(indexes: Iterator[int] = indexes) -> None:
                for i in indexes:
                    headers = {"Content-Type": "application/json", "Idempotency-Key": f"bench-{i}"}
                    async with session.post(url, data=bodies[i], headers=headers) as response:
                        await response.read()
                        response.raise_for_status()

            await asyncio.gather(*(worker() for _ in range(paralism)))


async def run_httpx(url: str, bodies: list[bytes], paralism: int) -> None:
    limits = httpx.Limits(max_connections=paralism, max_keepalive_connections=paralism)
    async with httpx.AsyncClient(timeout=10.0, limits=limits) as client:
        for rows in _batches_of(len(bodies)):
            indexes = iter(rows)

            async def worker(indexes: Iterator[int] = indexes) -> None:
                for i in indexes:
                    headers = {"Content-Type": "application/json", "Idempotency-Key": f"bench-{i}"}
                    response = await client.post(url, content=bodies[i], headers=headers)
                    response.raise_for_status()

            await asyncio.gather(*(worker() for _ in range(paralism)))


async def run_limit(url: str, bodies: list[bytes], paralism: int) -> None:
    """Keep-alive HTTP/1.1 by hand on ``paralism`` connections: no client library at all."""
    host, _, rest = url.removeprefix("http://").partition("/")
    hostname, _, port = host.partition(":")
    connections = [await asyncio.open_connection(hostname, int(port)) for _ in range(paralism)]
    head = f"POST /{rest} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n".encode()
    try:
        for rows in _batches_of(len(bodies)):
            indexes = iter(rows)

            async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                for i in indexes:
                    body = bodies[i]
                    writer.write(b"%sIdempotency-Key: bench-%d\r\nContent-Length: %d\r\n\r\n%s" % (head, i, len(body), body))
                    answer = await reader.readuntil(b"\r\n\r\n")
                    if not answer.startswith(b"HTTP/1.1 200"):
                        raise SystemExit(f"the receiver answered {answer[:40]!r}")
                    length = int(answer.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    await reader.readexactly(length)

            await asyncio.gather(*(worker(r, w) for r, w in connections))
    finally:
        for _, writer in connections:
            writer.close()


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
        f"{'paralism':>8} {'limit rows/s':>12} {'httpx rows/s':>12} {'bare rows/s':>12} {'sink rows/s':>12}"
        f" {'ratio':>6} {'× httpx':>7} {'bare cpu µs/row':>16} {'sink cpu µs/row':>16}"
    )
    senders = {
        "limit": partial(run_limit, url, bodies),
        "httpx": partial(run_httpx, url, bodies),
        "bare": partial(run_bare, url, bodies),
        "sink": partial(run_sink, url, batches),
    }
    for paralism in (1, 8):
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in senders}
        for _ in range(rounds):
            for name, run in senders.items():
                results[name].append(await timed(partial(run, paralism), rows, base, expected))
        rate = {name: max(r for r, _ in runs) for name, runs in results.items()}
        cpu = {name: min(c for _, c in runs) for name, runs in results.items()}
        print(
            f"{paralism:>8} {rate['limit']:>12,.0f} {rate['httpx']:>12,.0f} {rate['bare']:>12,.0f} {rate['sink']:>12,.0f}"
            f" {rate['sink'] / rate['bare']:>6.2f} {rate['sink'] / rate['httpx']:>7.1f}"
            f" {cpu['bare']:>16,.0f} {cpu['sink']:>16,.0f}"
        )
    print("ratio = sink ÷ bare aiohttp rows/s (goal ≥ 0.8); × httpx = sink ÷ bare httpx rows/s (goal at 8: ≥ 3);")
    print("limit = hand-written asyncio HTTP/1.1, the most a Python client gets here")


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
