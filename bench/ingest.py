"""Ingest rows/s of the sinkflow server vs a bare endpoint, in one run; then the same under load.

Eight concurrent clients (one process, aiohttp, keep-alive) post 500-row batches of car
readings in Timeplus's ``compact`` shape (``{"columns": [...], "data": [[...], ...]}``) to
``POST /api/v1beta2/streams/{name}/ingest`` for ``--seconds`` at a time:

* **server** — ``sinkflow server`` (a subprocess, no demo data), storing every row;
* **bare** — the same web server (uvicorn) serving a bare ASGI endpoint that only decodes
  each body into an Arrow table (orjson, one ``pa.array`` per column) and answers its count.

Each runs ``--rounds`` times alternately; the best of each is compared (goal: server ÷ bare
≥ 0.7, and ≥ 100k rows/s), with the request latency p50/p99.

Then the loaded run: the server also runs 3 webhook sinks (``select … where id % 2000 = 0``:
one row of every fourth batch) posting to a local receiver, and 5 SSE clients of a stateless
streaming query (``select … where id % 100 = 0``). The receiver and the SSE clients run in a
process of their own and time each row from the ``time`` it carries (the moment its batch
was sent) to its arrival. Printed: ingest rows/s and request latency, ingest → webhook and
ingest → SSE p50/p99 (goals: p99 < 1 s), and the server's event-loop lag p99 from the
``sinkflow_event_loop_lag_seconds`` histogram on ``/metrics`` over the loaded run
(goal: < 50 ms).

Usage: ``python bench/ingest.py [--seconds S] [--rounds R] [--clients N] [--no-load]``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.servers

from tests.servers.process import free_port, port_accepts, throwaway  # noqa: E402
from tests.servers.sinkflow import SinkflowServer  # noqa: E402

BATCH_ROWS = 500
STREAM = "readings"
COLUMNS = [
    ("id", "int64"),
    ("time", "datetime64(3)"),
    ("cid", "string"),
    ("speed_kmh", "float64"),
    ("total_km", "float64"),
    ("gas_percent", "float64"),
    ("locked", "bool"),
    ("in_use", "bool"),
]
#: Stands for the send time (epoch ms) in a prepared body; replaced as each batch is sent.
_SENT = b"1111111111111"
WEBHOOK_SQL = f"select id, time from {STREAM} where id % 2000 = 0"
SSE_SQL = f"select id, time from {STREAM} where id % 100 = 0"
SINKS, SSE_CLIENTS = 3, 5


# ----------------------------------------------------------------------------- the bodies


def make_bodies(client: int, count: int) -> list[bytes]:
    """``count`` compact-format bodies of ``BATCH_ROWS`` rows with ids unique to ``client``."""
    bodies = []
    for batch in range(count):
        first = client * 1_000_000_000 + batch * BATCH_ROWS
        rows = [
            [i, int(_SENT), f"c{i % 100:05d}", 40.0 + (i % 70) * 0.5, 1000.0 + i % 10_000, 50.5, i % 2 == 0, i % 3 == 0]
            for i in range(first, first + BATCH_ROWS)
        ]
        bodies.append(orjson.dumps({"columns": [name for name, _ in COLUMNS], "data": rows}))
    return bodies


# ----------------------------------------------------------------------------- the bare endpoint


async def bare_app(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                   send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    """An ASGI endpoint that decodes a compact body into an Arrow table and answers its row count."""
    if scope["type"] != "http":
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = orjson.loads(b"".join(chunks))
    table = pa.table(dict(zip(body["columns"], (pa.array(values) for values in zip(*body["data"])), strict=True)))
    answer = orjson.dumps({"count": table.num_rows})
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": answer})


def serve_bare(port: int) -> None:
    import uvicorn

    uvicorn.run(bare_app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# ----------------------------------------------------------------------------- the clients


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


async def post_batches(url: str, clients: int, seconds: float, bodies: list[list[bytes]],
                       headers: dict[str, str]) -> tuple[float, list[float]]:
    """(rows/s, request latencies) of ``clients`` concurrent clients posting for ``seconds``."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    rows = 0

    async def client(mine: list[bytes]) -> None:
        nonlocal rows
        async with aiohttp.ClientSession(headers=headers) as session:
            for body in _cycle(mine):
                if time.monotonic() >= deadline:
                    return
                sent = time.time()
                body = body.replace(_SENT, b"%d" % int(sent * 1000))
                async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
                    answer = await response.read()
                    if response.status != 200:
                        raise SystemExit(f"{url} answered {response.status}: {answer[:300]!r}")
                latencies.append(time.time() - sent)
                rows += BATCH_ROWS

    started = time.monotonic()
    await asyncio.gather(*(client(bodies[k]) for k in range(clients)))
    return rows / (time.monotonic() - started), latencies


def _cycle(bodies: list[bytes]) -> Any:
    while True:
        yield from bodies


# ----------------------------------------------------------------------------- the observer


def observe(base: str, port: int, sse_clients: int, ready: Any, stop: Any, results: Any) -> None:
    """Receive the webhooks and read the SSE queries; put the latencies (s) into ``results``."""
    from aiohttp import web

    def latency(sent: str) -> float:
        return time.time() - datetime.fromisoformat(sent).timestamp()

    async def main() -> None:
        webhook: list[float] = []
        sse: list[float] = []

        async def hook(request: web.Request) -> web.Response:
            webhook.append(latency(orjson.loads(await request.read())["time"]))
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

        async def read_sse(session: aiohttp.ClientSession) -> None:
            headers = {"Accept": "text/event-stream"}
            async with session.post(f"{base}/api/v1beta2/queries", json={"sql": SSE_SQL}, headers=headers) as response:
                event = "row"
                async for line in response.content:
                    if line.startswith(b"event: "):
                        event = line[7:].strip().decode()
                    elif line.startswith(b"data: "):
                        if event == "row":  # Timeplus's data event: rows as arrays, in header order (id, time)
                            sse.extend(latency(row[1]) for row in orjson.loads(line[6:]))
                        event = "row"

        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            readers = [asyncio.create_task(read_sse(session)) for _ in range(sse_clients)]
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.1)
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
        await runner.cleanup()
        results.put((webhook, sse))

    asyncio.run(main())


async def lag_buckets(base: str) -> dict[float, float]:
    """The event-loop lag histogram's cumulative bucket counts by upper bound (empty: no such metric)."""
    async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as response:
        text = await response.text()
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("sinkflow_event_loop_lag_seconds_bucket{"):
            bound = line.split('le="')[1].split('"')[0]
            buckets[float(bound)] = float(line.rsplit(" ", 1)[1])
    return buckets


def lag_p99(before: dict[float, float], after: dict[float, float]) -> str:
    """The smallest bucket bound holding 99% of the samples taken between the two readings."""
    if not after:
        return "n/a (no sinkflow_event_loop_lag_seconds)"
    counts = {bound: after[bound] - before.get(bound, 0.0) for bound in sorted(after)}
    total = counts[float("inf")]
    for bound, count in counts.items():
        if total and count >= 0.99 * total:
            return f"≤ {bound * 1000:g} ms ({int(total)} samples)"
    return "n/a"


# ----------------------------------------------------------------------------- the runs


async def create(base: str) -> None:
    async with aiohttp.ClientSession() as session:
        body = {"name": STREAM, "columns": [{"name": n, "type": t} for n, t in COLUMNS]}
        async with session.post(f"{base}/api/v1beta2/streams", json=body) as response:
            if response.status != 201:
                raise SystemExit(f"cannot create the stream: {await response.text()}")


async def add_sinks(base: str, hook: str) -> None:
    async with aiohttp.ClientSession() as session:
        for i in range(SINKS):
            body = {"name": f"hook{i}", "sql": WEBHOOK_SQL, "type": "webhook", "properties": {"url": hook}}
            async with session.post(f"{base}/api/v1beta2/sinks", json=body) as response:
                if response.status != 201:
                    raise SystemExit(f"cannot create a sink: {await response.text()}")


def report(name: str, rate: float, latencies: list[float], cpu: float) -> None:
    print(f"{name:>8} {rate:>10,.0f} rows/s   request p50 {percentile(latencies, 0.5) * 1000:6.1f} ms"
          f"  p99 {percentile(latencies, 0.99) * 1000:7.1f} ms   server CPU {cpu:5.2f} µs/row")


async def measured(pid: int, run: Awaitable[tuple[float, list[float]]]) -> tuple[float, list[float], float]:
    """``run``'s (rows/s, latencies) and the CPU time process ``pid`` spent per row meanwhile
    (steadier than rows/s on a shared machine)."""
    process = psutil.Process(pid)
    before = sum(process.cpu_times()[:2])
    started = time.monotonic()
    rate, latencies = await run
    rows = rate * (time.monotonic() - started)
    return rate, latencies, (sum(process.cpu_times()[:2]) - before) / max(rows, 1) * 1e6


async def compare(server: str, bare: str, pids: dict[str, int], args: argparse.Namespace,
                  bodies: list[list[bytes]]) -> None:
    ingest = f"{server}/api/v1beta2/streams/{STREAM}/ingest"
    best: dict[str, tuple[float, list[float], float]] = {}
    for _ in range(args.rounds):
        for name, url in (("bare", f"{bare}/ingest"), ("server", ingest)):
            result = await measured(pids[name], post_batches(url, args.clients, args.seconds, bodies, {}))
            if name not in best or result[0] > best[name][0]:
                best[name] = result
    print(f"{args.clients} clients, {BATCH_ROWS}-row compact batches, {args.seconds:g} s per run, "
          f"best of {args.rounds} alternating runs, nothing else running:")
    for name in ("bare", "server"):
        report(name, *best[name])
    print(f"ratio server ÷ bare: {best['server'][0] / best['bare'][0]:.2f} rows/s, "
          f"{best['bare'][2] / best['server'][2]:.2f} by CPU per row (goal ≥ 0.7; server goal ≥ 100,000 rows/s)")


async def loaded(server: str, pid: int, args: argparse.Namespace, bodies: list[list[bytes]]) -> None:
    hook_port = free_port()
    ready, stop, results = multiprocessing.Event(), multiprocessing.Event(), multiprocessing.Queue()
    observer = multiprocessing.Process(target=observe, args=(server, hook_port, SSE_CLIENTS, ready, stop, results))
    observer.start()
    try:
        if not ready.wait(30):
            raise SystemExit("the observer did not start")
        await add_sinks(server, f"http://127.0.0.1:{hook_port}/hook")
        await asyncio.sleep(2.0)  # let the sinks and queries start before the clock runs
        before = await lag_buckets(server)
        rate, latencies, cpu = await measured(pid, post_batches(
            f"{server}/api/v1beta2/streams/{STREAM}/ingest", args.clients, args.seconds, bodies, {}
        ))
        after = await lag_buckets(server)
        await asyncio.sleep(3.0)  # rows still on their way count too
        stop.set()
        webhook, sse = results.get(timeout=30)
    finally:
        stop.set()
        observer.join(10)
    print(f"\nthe same with {SINKS} webhook sinks ({WEBHOOK_SQL}) and {SSE_CLIENTS} SSE queries ({SSE_SQL}):")
    report("server", rate, latencies, cpu)
    for name, seen in (("webhook", webhook), ("SSE", sse)):
        print(f"ingest → {name}: {len(seen)} rows, p50 {percentile(seen, 0.5) * 1000:.0f} ms, "
              f"p99 {percentile(seen, 0.99) * 1000:.0f} ms, max {max(seen, default=float('nan')) * 1000:.0f} ms"
              " (goal: p99 < 1 s)")
    print(f"event-loop lag p99: {lag_p99(before, after)} (goal < 50 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--no-load", action="store_true", help="skip the run with sinks and SSE queries")
    args = parser.parse_args()
    bodies = [make_bodies(k, 20) for k in range(args.clients)]
    bare_port = free_port()
    bare = multiprocessing.Process(target=serve_bare, args=(bare_port,), daemon=True)
    bare.start()
    try:
        deadline = time.monotonic() + 30
        while not port_accepts(bare_port):
            if time.monotonic() > deadline:
                raise SystemExit("the bare endpoint did not start")
            time.sleep(0.05)
        with throwaway(lambda directory: SinkflowServer(directory / "data"), "bench-ingest-") as srv:
            asyncio.run(create(srv.url))
            assert srv.process is not None and bare.pid is not None
            pids = {"server": srv.process.pid, "bare": bare.pid}
            asyncio.run(compare(srv.url, f"http://127.0.0.1:{bare_port}", pids, args, bodies))
            if not args.no_load:
                asyncio.run(loaded(srv.url, srv.process.pid, args, bodies))
    finally:
        bare.terminate()
        bare.join()


if __name__ == "__main__":
    main()
