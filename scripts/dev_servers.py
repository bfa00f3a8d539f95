"""The local servers the docs' examples send to, started with one command.

``scripts/dev-servers.sh`` runs this: a Kafka broker (Tansu), a ClickHouse server, a Pulsar
broker and an SMTP server (no TLS, no login; every message it receives is printed), each on a
free 127.0.0.1 port, with their data in a temporary directory. It prints the sink properties
that reach each one and runs until Ctrl-C, then stops them all and removes their data. They are
the servers the test suite uses (``tests/servers/``): install the test extras first
(``pip install -e '.[test]'`` and Debian's ``clickhouse-server``), as ``scripts/bootstrap.sh`` does.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tests.servers.clickhouse import ClickHouseServer
from tests.servers.process import running
from tests.servers.pulsar import PulsarServer
from tests.servers.smtp import SmtpServer
from tests.servers.tansu import TansuBroker

SERVERS = ("kafka", "clickhouse", "pulsar", "smtp")


def _show(name: str, properties: dict[str, Any]) -> None:
    print(f"{name:<11} properties: {json.dumps(properties)}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("servers", nargs="*", metavar="SERVER",
                        help=f"which to start: {', '.join(SERVERS)} (default: all)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.servers) - set(SERVERS))
    if unknown:
        parser.error(f"unknown server {', '.join(unknown)} (choose from {', '.join(SERVERS)})")
    args.servers = args.servers or list(SERVERS)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with tempfile.TemporaryDirectory(prefix="sinkflow-dev-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        if "kafka" in args.servers:
            kafka = stack.enter_context(running(TansuBroker(root / "kafka")))
            _show("kafka", {"brokers": kafka.bootstrap, "topic": "cars", "tls.disable": True})
        if "clickhouse" in args.servers:
            (root / "clickhouse").mkdir()
            ch = stack.enter_context(running(ClickHouseServer(root / "clickhouse")))
            _show("clickhouse", {"table_name": "cars", "engine": "MergeTree()", "suffix": "ORDER BY time",
                                 "dsn": f"clickhouse://{ch.user}:{ch.password}@127.0.0.1:{ch.tcp_port}/default"})
        if "pulsar" in args.servers:
            (root / "pulsar").mkdir()
            pulsar = stack.enter_context(running(PulsarServer(root / "pulsar")))
            _show("pulsar", {"broker_url": pulsar.url, "topic": "cars", "auth_type": ""})
        if "smtp" in args.servers:
            (root / "smtp").mkdir()
            smtp = stack.enter_context(running(SmtpServer(root / "smtp", mode="none")))
            _show("email", {"host": smtp.host, "port": smtp.port, "tls": "none",
                            "from": "alerts@example.org", "to": "you@example.org"})
        print("running; Ctrl-C stops them and removes their data", flush=True)
        shown = 0
        try:
            while not stop.wait(0.5):
                if "smtp" in args.servers:
                    for received in smtp.messages[shown:]:
                        print(f"--- e-mail to {', '.join(received.rcpt_tos)}: "
                              f"{received.message['Subject']}\n{received.message.get_content().strip()}", flush=True)
                    shown = len(smtp.messages)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
