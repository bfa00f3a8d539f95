"""Cluster mode on this machine: ingest and sink rows/s with 1, 2 and 3 nodes, and failover time.

Every side runs real processes: one Tansu broker and sinkflow servers started as users start
them (``sinkflow server --cluster``; tests/servers/sinkflow_cluster.py). The reference is the
embedded single-process server doing the same work in the same run, so each figure is printed
as a ratio to it. The machine has 2 cores shared by every process (broker and nodes): what is
meaningful is the per-node efficiency (the cluster's rate divided by its node count, over the
embedded rate), not absolute scaling.

- ingest: ``--rows`` rows of ``(n int64, payload string)``, split between ``--clients`` clients
  per node, each posting ``--batch``-row batches to its node's REST ingest endpoint; rows/s
  over all. A cluster node's ingest waits for Kafka's acknowledgement and its own copy.
- sink: ``--sinks`` kafka sinks (``select n, payload from bench SETTINGS seek_to='earliest'``)
  deliver the ingested rows to Tansu topics; rows/s from their creation until every sink's
  status counts every row delivered (statuses read from any node).
- sharded ingest (3 nodes): the same rows into a stream of ``shards=3, sharding_expr='n'``
  (each append split in three parts plus its order record), as a ratio to the one-partition
  stream's ingest of the same cluster and to the embedded rate; the rows are read back whole on
  another node before the figure is printed.
- failover (3 nodes): a webhook sink delivers a steady ingest to a local receiver; its node is
  killed with ``kill -9``; the time until the next row arrives (from the node that took the
  sink over) is printed beside the session timeout (goal: under it plus 5 s).

    python bench/cluster.py [--rows 300000] [--batch 1000] [--clients 1] [--sinks 3]
"""

from __future__ import annotations

import argparse
import http.server
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.servers

from tests.servers.process import running, throwaway  # noqa: E402
from tests.servers.sinkflow import SinkflowServer  # noqa: E402
from tests.servers.sinkflow_cluster import SESSION_TIMEOUT_MS, ClusterNodes, call, wait_for  # noqa: E402
from tests.servers.tansu import TansuBroker  # noqa: E402


def ingest(servers: list[SinkflowServer], rows: int, batch: int, stream: str = "bench") -> float:
    """Ingest ``rows`` rows into ``stream``, split between the clients (``servers`` may name one
    several times); return the elapsed seconds."""
    payload = "x" * 64
    share = rows // len(servers)

    def client(index: int, server: SinkflowServer) -> None:
        with server.client() as api:
            for start in range(index * share, (index + 1) * share, batch):
                data = [[n, payload] for n in range(start, min(start + batch, (index + 1) * share))]
                api.post(f"/api/v1beta2/streams/{stream}/ingest",
                         json={"columns": ["n", "payload"], "data": data}).raise_for_status()

    threads = [threading.Thread(target=client, args=(i, s)) for i, s in enumerate(servers)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - started


def sink_rate(servers: list[SinkflowServer], bootstrap: str, sinks: int, rows: int, tag: str) -> float:
    """Rows/s delivered by ``sinks`` kafka sinks replaying ``rows`` rows from the stream's start."""
    started = time.monotonic()
    ids = [call(servers[0], "POST", "/sinks", json={
        "name": f"bench_{tag}_{i}", "type": "kafka",
        "sql": "select n, payload from bench SETTINGS seek_to='earliest'",
        "properties": {"brokers": bootstrap, "topic": f"bench-{tag}-{i}", "tls.disable": True}})["id"]
        for i in range(sinks)]

    def delivered() -> bool:
        return all(call(servers[0], "GET", f"/sinks/{i}/status")["rows_delivered"] >= rows for i in ids)

    wait_for(delivered, "every sink's rows delivered", timeout=600.0)
    return sinks * rows / (time.monotonic() - started)


def create(servers: list[SinkflowServer], stream: str, settings: str = "") -> None:
    """Create ``stream`` (n int64, payload string) on the first server; return once every server has it."""
    call(servers[0], "POST", "/queries", json={"sql": f"CREATE STREAM {stream} (n int64, payload string) {settings}"})
    for server in servers[1:]:
        wait_for(lambda: any(s["name"] == stream for s in call(server, "GET", "/streams")), "the stream everywhere")


def measure(servers: list[SinkflowServer], bootstrap: str, args: argparse.Namespace, tag: str) -> tuple[float, float]:
    create(servers, "bench")
    clients = servers * args.clients
    rows = args.rows // len(clients) * len(clients)
    return rows / ingest(clients, rows, args.batch), sink_rate(servers, bootstrap, args.sinks, rows, tag)


def sharded_ingest(nodes: list[SinkflowServer], args: argparse.Namespace) -> float:
    """Rows/s ingested through every node into a stream of one partition per node, placed by
    ``sharding_expr='n'``; checks that the last node reads every row back."""
    create(nodes, "bench_sharded", f"SETTINGS shards={len(nodes)}, sharding_expr='n'")
    clients = nodes * args.clients
    rows = args.rows // len(clients) * len(clients)
    rate = rows / ingest(clients, rows, args.batch, "bench_sharded")
    count = "select count() as c from table(bench_sharded)"
    wait_for(lambda: call(nodes[-1], "POST", "/queries", json={"sql": count})["rows"][0]["c"] == rows,
             "every sharded row read back on another node")
    return rate


class _Receiver(http.server.BaseHTTPRequestHandler):
    arrivals: list[float] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Receiver.arrivals.append(time.monotonic())
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@contextmanager
def receiver() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()


def failover(cluster: ClusterNodes, nodes: list[SinkflowServer]) -> float:
    """Seconds from kill -9 of a webhook sink's node to the next row it delivers."""
    a = nodes[0]
    call(a, "POST", "/queries", json={"sql": "CREATE STREAM beat (n int64)"})
    with receiver() as url:
        sink = call(a, "POST", "/sinks", json={"name": "failover", "type": "webhook", "sql": "select n from beat",
                                               "properties": {"url": url}})
        owner = wait_for(lambda: call(a, "GET", f"/sinks/{sink['id']}/status")["node"], "the sink placed")
        victim = next(n for n in nodes if getattr(n, "node_id", None) == owner)
        feeder = next(n for n in nodes if n is not victim)
        stop = threading.Event()

        def feed() -> None:
            with feeder.client() as api:
                n = 0
                while not stop.is_set():
                    api.post("/api/v1beta2/streams/beat/ingest", json={"columns": ["n"], "data": [[n]]})
                    n += 1
                    time.sleep(0.02)

        thread = threading.Thread(target=feed)
        thread.start()
        try:
            wait_for(lambda: len(_Receiver.arrivals) > 20, "rows before the kill")
            victim.kill()
            killed = time.monotonic()
            first = wait_for(lambda: next((t for t in list(_Receiver.arrivals) if t > killed), None),
                             "a row after the kill")
        finally:
            stop.set()
            thread.join()
    return first - killed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=1, help="ingest clients per node")
    parser.add_argument("--sinks", type=int, default=3)
    args = parser.parse_args()
    with throwaway(TansuBroker, "bench-tansu-") as broker, ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-cluster-")))
        embedded = stack.enter_context(running(SinkflowServer(directory / "embedded")))
        base_ingest, base_sink = measure([embedded], broker.bootstrap, args, "embedded")
        embedded.stop()
        print(f"embedded (reference): ingest {base_ingest:,.0f} rows/s, sink {base_sink:,.0f} rows/s "
              f"({args.sinks} kafka sinks)")
        print(f"{'nodes':>5} {'ingest rows/s':>14} {'per node / embedded':>20} {'sink rows/s':>12} "
              f"{'per node / embedded':>20}")
        for count in (1, 2, 3):
            cluster = ClusterNodes(directory / f"c{count}", broker.bootstrap, work_partitions=12)
            with ExitStack() as nodes_stack:
                nodes = [nodes_stack.enter_context(running(cluster.node(f"n{i}"))) for i in range(count)]
                rate_in, rate_out = measure(nodes, broker.bootstrap, args, f"c{count}")
                print(f"{count:>5} {rate_in:>14,.0f} {rate_in / count / base_ingest:>20.2f} {rate_out:>12,.0f} "
                      f"{rate_out / count / base_sink:>20.2f}")
                if count == 3:
                    sharded = sharded_ingest(nodes, args)
                    print(f"sharded stream (shards=3, sharding_expr='n'), 3 nodes: ingest {sharded:,.0f} rows/s, "
                          f"{sharded / rate_in:.2f} x the one-partition stream, "
                          f"{sharded / 3 / base_ingest:.2f} per node / embedded")
                    seconds = failover(cluster, nodes)
                    print(f"failover: first row from the new node {seconds:.1f}s after kill -9 "
                          f"(session timeout {SESSION_TIMEOUT_MS / 1000:.0f}s; goal under "
                          f"{SESSION_TIMEOUT_MS / 1000 + 5:.0f}s)")


if __name__ == "__main__":
    main()
