"""The ``sinkflow`` command: the server, and commands that talk to a running server."""

from __future__ import annotations

import csv
import json
import re
import socket
import sys
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import httpx
from rich.console import Console
from rich.live import Live
from rich.measure import Measurement
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from sinkflow.errors import SinkflowError

DEFAULT_SERVER = "http://127.0.0.1:8000"
_ROW = re.compile(r"\brow (\d+)")
_ISO_OFFSET = re.compile(r"(Z|[+-]\d\d:\d\d)$")
console = Console(stderr=True)
out = Console()


class ServerClient:
    """A thin client of the REST API; server errors become :class:`click.ClickException` with the server's message."""

    def __init__(self, url: str, api_key: str | None) -> None:
        headers = {"X-Api-Key": api_key} if api_key else {}
        self.http = httpx.Client(base_url=url, headers=headers, timeout=httpx.Timeout(30.0, read=None))

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise click.ClickException(f"cannot reach the sinkflow server at {self.http.base_url}") from None
        check(response)
        return response.json() if response.content else None


def check(response: httpx.Response) -> None:
    """Raise a ClickException carrying the server's error message (and SQL position)."""
    if response.is_success:
        return
    try:
        body = response.json()
    except ValueError:
        raise click.ClickException(f"HTTP {response.status_code}: {response.text[:200]}") from None
    message = body.get("message", response.text)
    if "position" in body and "line " not in message:
        message += f" (line {body['position']['line']}, column {body['position']['column']})"
    raise click.ClickException(message)


@click.group()
@click.option("--server", "server_url", envvar="SINKFLOW_SERVER", show_envvar=True, default=DEFAULT_SERVER,
              show_default=True, help="The sinkflow server to talk to (e.g. http://127.0.0.1:8080).")
@click.option("--api-key", envvar="SINKFLOW_API_KEY", show_envvar=True, default=None, help="Sent as X-Api-Key.")
@click.pass_context
def main(ctx: click.Context, server_url: str, api_key: str | None) -> None:
    """sinkflow: streaming SQL whose results flow to Slack, e-mail, webhooks, Kafka, ClickHouse and more.

    Every command but `server` talks to a running server: --server, or SINKFLOW_SERVER in
    the environment, says which (default http://127.0.0.1:8000).
    """
    ctx.obj = {"url": server_url, "api_key": api_key}


def client(ctx: click.Context) -> ServerClient:
    """A client of the server named by the top-level options (from any subcommand's context)."""
    options = ctx.find_root().obj
    return ServerClient(options["url"], options["api_key"])


# -- server ------------------------------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--data-dir", default="sinkflow-data", show_default=True, type=click.Path(path_type=Path))
@click.option("--no-demo", is_flag=True, help="Do not create and feed the demo streams.")
@click.option("--log-level", default="info", show_default=True)
@click.option("--cluster", "bootstrap", envvar="SINKFLOW_CLUSTER",
              help="Join the cluster on these Kafka bootstrap servers (host:port,...); needs SINKFLOW_SECRET_KEY.")
@click.option("--node-id", envvar="SINKFLOW_NODE_ID", help="This node's id in the cluster (default: HOSTNAME-PORT).")
@click.option("--cluster-name", envvar="SINKFLOW_CLUSTER_NAME", default="sinkflow", show_default=True,
              help="Prefix of the cluster's internal topics and consumer group.")
@click.option("--cluster-property", "cluster_props", multiple=True,
              help="The cluster's Kafka connection, named as the Kafka sink's properties: sasl, username, "
                   "password, tls.disable, tls.skip_verify_server, tls.ca_file (key=value; repeat).")
@click.option("--query-timeout", default=60.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              envvar="SINKFLOW_QUERY_TIMEOUT", help="Seconds a bounded query (table(...)) may run before it is stopped.")
@click.option("--memory-limit", default=None, type=int, envvar="SINKFLOW_MEMORY_LIMIT",
              help="Bytes of memory the query engine may use [default: half of the machine's].")
@click.pass_context
def server(ctx: click.Context, host: str, port: int, data_dir: Path, no_demo: bool, log_level: str,
           bootstrap: str | None, node_id: str | None, cluster_name: str, cluster_props: tuple[str, ...],
           query_timeout: float, memory_limit: int | None) -> None:
    """Run the server: REST API, live queries, sinks and the console."""
    import logging

    import uvicorn

    from sinkflow.api.app import create_app, data_dir_lock
    from sinkflow.api.context import ServerSettings

    cluster = None
    if bootstrap:
        from sinkflow.cluster.settings import settings_from_environment
        from sinkflow.sinks import registry

        # The cluster's own Kafka connection takes the Kafka sink's property names and types.
        properties = parse_properties(cluster_props, registry.property_schemas()["kafka"])
        try:
            cluster = settings_from_environment(bootstrap, node_id or f"{socket.gethostname()}-{port}", cluster_name,
                                                properties)
        except SinkflowError as exc:
            raise click.ClickException(exc.message) from None
    settings = ServerSettings(host=host, port=port, data_dir=data_dir, demo=not no_demo, api_key=ctx.obj["api_key"],
                              cluster=cluster, query_timeout=query_timeout, memory_limit=memory_limit)
    if not settings.is_loopback() and not settings.api_key:
        raise click.ClickException(
            f"refusing to listen on {host} without an API key: set --api-key or SINKFLOW_API_KEY "
            "(clients then send it as X-Api-Key)"
        )
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        with data_dir_lock(data_dir):
            console.print(f"sinkflow listening on [bold]http://{host}:{port}[/] (data in {data_dir.resolve()}, "
                          f"demo {'off' if no_demo else 'on'}, console at http://{host}:{port}/)")
            if cluster is not None:
                console.print(f"cluster [bold]{cluster.name}[/] on {cluster.bootstrap}, node {cluster.node_id}")
            uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, access_log=False)
    except SinkflowError as exc:
        raise click.ClickException(exc.message) from None


# -- query -------------------------------------------------------------------------------------


def sse_rows(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) pairs from a query's Server-Sent Events: ("query", its metadata) first, then
    ("row", {...}) per result row, and ("error", {...}) if it failed; ends with the query."""
    event, names, started = "row", [], False
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = json.loads(line[6:])
            if event == "row":
                yield from (("row", dict(zip(names, row))) for row in data)
            elif event == "query" and started:  # the closing query event, with the final status
                if data.get("status") == "failed":
                    yield "error", data
                return
            elif event == "query":
                started, names = True, [c["name"] for c in data["result"]["header"]]
                yield event, data
            event = "row"


@main.command()
@click.argument("sql")
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl", "csv"]), default="table", show_default=True,
              help="table: live on screen; jsonl: one JSON object per row; csv: a header, then values as Timeplus prints them.")
@click.option("--rows", default=20, show_default=True, help="Rows kept on screen in table format.")
@click.pass_context
def query(ctx: click.Context, sql: str, fmt: str, rows: int) -> None:
    """Run SQL. Streaming results show live until Ctrl-C (or LIMIT); DDL prints its status."""
    api = client(ctx)
    headers = {"Accept": "text/event-stream"}
    try:
        with api.http.stream("POST", "/api/v1beta2/queries", json={"sql": sql}, headers=headers) as response:
            if not response.is_success:
                response.read()
                check(response)
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                response.read()
                body = response.json()
                out.print(body.get("message") or "ok")
                return
            if fmt in ("jsonl", "csv"):
                _stream_rows(sse_rows(response), fmt)
                return
            _live_table(sse_rows(response), rows)
    except httpx.ConnectError:
        raise click.ClickException(f"cannot reach the sinkflow server at {ctx.obj['url']}") from None
    except KeyboardInterrupt:
        console.print("stopped")


def cell(value: Any, column_type: str) -> str:
    """A value from the API's JSON as Timeplus prints it: numbers as sent (a float32 already as
    its shortest text), ``true``/``false``, datetimes as ``2022-01-23 10:00:00.123`` in the
    column's zone, arrays and maps as JSON, null as empty text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and "datetime" in column_type.lower():
        return _ISO_OFFSET.sub("", value).replace("T", " ")
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _stream_rows(events: Iterator[tuple[str, dict[str, Any]]], fmt: str) -> None:
    """Write every row to stdout as it arrives: JSON lines, or CSV with a header row."""
    writer = csv.writer(sys.stdout, lineterminator="\n")
    columns: list[tuple[str, str]] = []
    for event, data in events:
        if event == "query":
            columns = [(c["name"], c["type"]) for c in data["columns"]]
            if fmt == "csv":
                writer.writerow([name for name, _ in columns])
        elif event == "row":
            if fmt == "csv":
                writer.writerow([cell(data.get(name), typ) for name, typ in columns])
            else:
                sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        elif event == "error":
            raise click.ClickException(data.get("message", "query failed"))


def _live_table(events: Iterator[tuple[str, dict[str, Any]]], keep: int) -> None:
    columns: list[tuple[str, str]] = []
    recent: deque[dict[str, Any]] = deque(maxlen=keep)
    count, started = 0, time.monotonic()

    def render() -> Table:
        rate = count / max(time.monotonic() - started, 1e-9)
        table = Table(title=f"{count} rows · {rate:,.0f} rows/s", title_justify="left")
        for name, _ in columns:
            table.add_column(name)
        for row in reversed(recent):
            table.add_row(*(cell(row.get(name), typ) for name, typ in columns))
        return table

    with Live(render(), console=out, refresh_per_second=4) as live:
        for event, data in events:
            if event == "query":
                columns = [(c["name"], c["type"]) for c in data["columns"]]
            elif event == "error":
                raise click.ClickException(data.get("message", "query failed"))
            elif event == "row":
                recent.append(data)
                count += 1
            live.update(render())


# -- streams -----------------------------------------------------------------------------------


@main.group()
def stream() -> None:
    """Create, list, describe and drop streams."""


@stream.command("create")
@click.argument("name")
@click.argument("columns", nargs=-1, required=True)
@click.option("--event-time-column", default=None, help="The column holding each event's time.")
@click.pass_context
def stream_create(ctx: click.Context, name: str, columns: tuple[str, ...], event_time_column: str | None) -> None:
    """Create stream NAME from COLUMNS written as name:type (e.g. cid:string speed:float64)."""
    cols = []
    for spec in columns:
        col_name, sep, col_type = spec.partition(":")
        if not sep:
            raise click.BadParameter(f"'{spec}' is not name:type", param_hint="COLUMNS")
        cols.append({"name": col_name, "type": col_type})
    body = {"name": name, "columns": cols, "event_time_column": event_time_column}
    client(ctx).call("POST", "/api/v1beta2/streams", json=body)  # type: ignore[union-attr]
    out.print(f"created stream {name}")


@stream.command("list")
@click.pass_context
def stream_list(ctx: click.Context) -> None:
    """List the streams with their columns and row counts."""
    streams = client(ctx).call("GET", "/api/v1beta2/streams")  # type: ignore[union-attr]
    table = Table("name", "columns", "rows")
    for s in streams:
        table.add_row(s["name"], ", ".join(f"{c['name']} {c['type']}" for c in s["columns"]), str(s["row_count"]))
    out.print(table)


@stream.command("describe")
@click.argument("name")
@click.pass_context
def stream_describe(ctx: click.Context, name: str) -> None:
    """Show stream NAME's columns and types."""
    s = client(ctx).call("GET", f"/api/v1beta2/streams/{name}")  # type: ignore[union-attr]
    table = Table("column", "type", "default", title=f"{s['name']} ({s['row_count']} rows, event time: "
                  f"{s['event_time_column']})")
    for c in s["columns"]:
        default = f"{'ALIAS' if c.get('alias') else 'DEFAULT'} {c['default']}" if c.get("default") else ""
        table.add_row(c["name"], c["type"], default)
    out.print(table)


@stream.command("drop")
@click.argument("name")
@click.pass_context
def stream_drop(ctx: click.Context, name: str) -> None:
    """Drop stream NAME and its data."""
    client(ctx).call("DELETE", f"/api/v1beta2/streams/{name}")  # type: ignore[union-attr]
    out.print(f"dropped stream {name}")


# -- ingest ------------------------------------------------------------------------------------


@main.command()
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--batch-size", default=10_000, show_default=True, help="Rows per request.")
@click.pass_context
def ingest(ctx: click.Context, name: str, file: Path, batch_size: int) -> None:
    """Ingest FILE (JSON lines, or CSV with a header) into stream NAME, showing progress.

    Each chunk is one batch on the server: a bad value rejects its chunk whole, and the
    error names the file's data row, the column and the value.
    """
    from sinkflow.streams.ingest import FileChunks

    api = client(ctx)
    try:
        chunks = FileChunks(file, batch_size)
    except SinkflowError as exc:
        raise click.ClickException(exc.message) from None
    rows = 0
    columns = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[rows]:,} rows"),
               TransferSpeedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(f"ingest {file.name}", total=chunks.total_bytes, rows=0)
        try:
            for names, data in chunks:
                try:
                    api.call("POST", f"/api/v1beta2/streams/{name}/ingest", json={"columns": names, "data": data})
                except click.ClickException as exc:
                    # The server counts rows within the chunk; name the row of the file instead.
                    exc.message = _ROW.sub(lambda m: f"row {int(m.group(1)) + chunks.first_row - 1}", exc.message, 1)
                    raise click.ClickException(f"{exc.message} ({rows:,} rows before it were ingested)") from None
                rows += len(data)
                progress.update(task, completed=chunks.bytes_read, rows=rows)
        except SinkflowError as exc:
            raise click.ClickException(exc.message) from None
    out.print(f"ingested {rows:,} rows into {name}")


# -- sinks -------------------------------------------------------------------------------------


_PROPERTY_HELP = ("A sink property; repeat for more. VALUE is taken as written for text properties "
                  "(JSON only where the property is an object, list, number or boolean); KEY=@FILE reads it "
                  "from FILE; a.b=VALUE sets b inside object property a.")


@main.group()
def sink() -> None:
    """Create and control sinks: a streaming query whose every result row goes to a destination."""


def _property_schema(schema: dict[str, Any], key: str) -> dict[str, Any] | None:
    """The JSON schema of property ``key`` of a sink type (``$ref`` and ``anyOf [X, null]`` resolved),
    or None when the type has no such property (the server then names it)."""
    prop = schema.get("properties", {}).get(key)
    if prop is None:
        return None
    if "$ref" in prop:
        prop = {**schema.get("$defs", {}).get(prop["$ref"].rsplit("/", 1)[-1], {}), **prop}
    for option in prop.get("anyOf", []):
        if option.get("type") != "null":
            return {**prop, **option}
    return prop


def _typed_value(schema: dict[str, Any] | None, key: str, value: str) -> Any:
    """``value`` as the property's type wants it: text as given for a string (or an unknown
    property), JSON for an object, a number or a boolean; a list from JSON or comma-separated text."""
    kind = (schema or {}).get("type", "string")
    if kind == "string":
        return value
    if kind == "array" and not value.lstrip().startswith("["):
        return value  # the server splits "a,b"
    try:
        return json.loads(value)
    except ValueError:
        if kind in ("object", "array"):
            raise click.BadParameter(f"'{key}' takes a JSON {kind}, got {value!r}", param_hint="--property") from None
        return value  # the server says what it expected


def parse_properties(pairs: tuple[str, ...], schema: dict[str, Any]) -> dict[str, Any]:
    """``-p key=value`` options as a properties object, each value typed by the sink type's
    ``schema``. ``key=@path`` reads the value from a file; ``a.b=v`` sets ``b`` inside object
    property ``a`` (unless the type spells ``a.b`` as one property, like ``tls.disable``)."""
    properties: dict[str, Any] = {}
    for text in pairs:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"'{text}' is not key=value", param_hint="--property")
        if value.startswith("@"):
            try:
                value = Path(value[1:]).expanduser().read_text()
            except OSError as exc:
                raise click.BadParameter(f"'{key}': cannot read {value[1:]}: {exc.strerror}",
                                         param_hint="--property") from None
        parent, dot, leaf = key.partition(".")
        parent_schema = _property_schema(schema, parent) if dot and key not in schema.get("properties", {}) else None
        if parent_schema is not None and "properties" in parent_schema:
            leaf_schema = _property_schema(parent_schema | {"$defs": schema.get("$defs", {})}, leaf)
            properties.setdefault(parent, {})[leaf] = _typed_value(leaf_schema, key, value)
        else:
            properties[key] = _typed_value(_property_schema(schema, key), key, value)
    return properties


def _type_schema(api: ServerClient, sink_type: str) -> dict[str, Any]:
    schema: dict[str, Any] = api.call("GET", "/api/v1beta2/sink-types").get(sink_type, {})
    return schema


def _send_sink(api: ServerClient, method: str, path: str, body: dict[str, Any], confirm_bounded: bool) -> Any:
    """POST/PATCH a sink; a bounded query's warning is printed, and without --confirm-bounded
    the server's refusal says which flag to add."""
    params = {"confirm_bounded": "true"} if confirm_bounded else {}
    try:
        answer = api.call(method, path, json=body, params=params)
    except click.ClickException as exc:
        if "confirm_bounded" in exc.message:
            exc.message = exc.message.split(". To create it anyway")[0] + ". Add --confirm-bounded to go ahead."
        raise
    for warning in answer.get("warnings", []):
        console.print(f"[yellow]warning:[/] {warning}")
    return answer


@sink.command("create")
@click.option("--name", help="Sink name (letters, digits, _).")
@click.option("--type", "sink_type", help="http, webhook, slack, email, timeplus, kafka, pulsar, clickhouse, snowflake")
@click.option("--sql", help="The streaming query whose rows are sent.")
@click.option("--description", default="")
@click.option("--property", "-p", "props", multiple=True, metavar="KEY=VALUE",
              help=_PROPERTY_HELP)
@click.option("--file", "def_file", type=click.File(), help="A JSON sink definition {name, sql, type, properties}.")
@click.option("--confirm-bounded", is_flag=True, help="Create it even though its query is bounded (table(...)): "
              "it then sends the rows stored now, once, and stops.")
@click.pass_context
def sink_create(ctx: click.Context, name: str | None, sink_type: str | None, sql: str | None, description: str,
                props: tuple[str, ...], def_file: Any, confirm_bounded: bool) -> None:
    """Create a sink from options or from a JSON definition file.

    Example: sinkflow sink create --name alerts --type slack --sql "select ..." -p url=@slack-url.txt
    -p 'template=car {{ .cid }} at {{ .speed_kmh }} km/h'
    """
    body: dict[str, Any] = json.load(def_file) if def_file else {}
    for key, value in (("name", name), ("type", sink_type), ("sql", sql)):
        if value:
            body[key] = value
    if description:
        body["description"] = description
    missing = [key for key in ("name", "type", "sql") if not body.get(key) and not (key == "sql" and body.get("query"))]
    if missing:
        raise click.UsageError(f"missing {', '.join('--' + m for m in missing)}")
    api = client(ctx)
    if props:
        body.setdefault("properties", {}).update(parse_properties(props, _type_schema(api, body["type"])))
    created = _send_sink(api, "POST", "/api/v1beta2/sinks", body, confirm_bounded)
    out.print(f"created sink {created['name']} ({created['id']})")


@sink.command("update")
@click.argument("sink_id", metavar="NAME|ID")
@click.option("--property", "-p", "props", multiple=True, metavar="KEY=VALUE", help=_PROPERTY_HELP)
@click.option("--sql", help="A new query (the sink restarts with it).")
@click.option("--description", default=None)
@click.option("--confirm-bounded", is_flag=True, help="Accept a bounded query (table(...)).")
@click.pass_context
def sink_update(ctx: click.Context, sink_id: str, props: tuple[str, ...], sql: str | None, description: str | None,
                confirm_bounded: bool) -> None:
    """Change a sink: only the properties given (and --sql, --description) change; the others,
    secrets included, stay as they are. The sink restarts with its new definition.

    Example: sinkflow sink update alerts -p 'template=car {{ .cid }}: {{ .speed_kmh }} km/h'
    """
    if not (props or sql or description is not None):
        raise click.UsageError("nothing to change: give -p KEY=VALUE, --sql or --description")
    api = client(ctx)
    current = api.call("GET", f"/api/v1beta2/sinks/{sink_id}")
    body: dict[str, Any] = {"properties": parse_properties(props, _type_schema(api, current["type"]))}
    if sql:
        body["sql"] = sql
    if description is not None:
        body["description"] = description
    updated = _send_sink(api, "PATCH", f"/api/v1beta2/sinks/{current['id']}", body, confirm_bounded)
    out.print(f"updated sink {updated['name']}")


@sink.command("list")
@click.pass_context
def sink_list(ctx: click.Context) -> None:
    """List the sinks with their state and counters."""
    sinks = client(ctx).call("GET", "/api/v1beta2/sinks")  # type: ignore[union-attr]
    table = Table()
    table.add_column("name", no_wrap=True)  # a name is what a user copies into the next command
    for heading in ("type", "state"):
        table.add_column(heading)
    for heading in ("delivered", "retries", "dead-lettered", "lag"):
        table.add_column(heading, justify="right")
    table.add_column("last error", overflow="fold", max_width=60)
    for s in sinks:
        st = s["stats"]
        table.add_row(s["name"], s["type"], st["state"], f"{st['rows_delivered']:,}", f"{st['retries']:,}",
                      f"{st['dead_lettered']:,}", f"{st['lag']:,}", _last_error(st))
    # Wider than the terminal rather than a name cut short (the terminal wraps the line, as kubectl's do).
    needed = Measurement.get(out, out.options.update(max_width=250), table).maximum
    Console(width=max(out.width, needed)).print(table)


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at)) if at else ""


def _last_error(status: dict[str, Any]) -> str:
    """The last error with its time; marked as past once the sink delivered again after it."""
    error = status.get("last_error") or ""
    if not error:
        return ""
    at, delivered = status.get("last_error_at"), status.get("last_delivered_at")
    past = " (past: delivered since)" if at and delivered and delivered > at else ""
    return f"{error} [{_when(at)}]{past}" if at else error


@main.command("cluster")
@click.pass_context
def cluster_show(ctx: click.Context) -> None:
    """Show the cluster's nodes: address, alive, the sinks each runs."""
    body = client(ctx).call("GET", "/api/v1beta2/cluster")  # type: ignore[union-attr]
    if body["mode"] != "cluster":
        out.print("this server runs alone (embedded mode; start it with --cluster to join a cluster)")
        return
    table = Table("node", "address", "alive", "sinks")
    for node in body["nodes"]:
        table.add_row(node["id"], node["address"], "yes" if node["alive"] else "no", str(len(node["sinks"])))
    out.print(f"cluster {body['name']} (this node: {body['node']})")
    out.print(table)


@sink.command("show")
@click.argument("sink_id", metavar="NAME|ID")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON document instead.")
@click.pass_context
def sink_show(ctx: click.Context, sink_id: str, as_json: bool) -> None:
    """Show a sink: its definition (secrets masked), state, counters, last error and state history."""
    s = client(ctx).call("GET", f"/api/v1beta2/sinks/{sink_id}")  # type: ignore[union-attr]
    if as_json:
        out.print_json(json.dumps(s))
        return
    st = s["stats"]
    about = Table.grid(padding=(0, 2))
    about.add_column(style="bold")
    about.add_column(overflow="fold")
    about.add_row("name", s["name"])
    about.add_row("id", s["id"])
    about.add_row("type", s["type"])
    if s.get("description"):
        about.add_row("description", s["description"])
    about.add_row("query", s["query"])
    for key, value in _flat(s["properties"]):
        about.add_row(f"  {key}", value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
    about.add_row("state", st["state"] + (f" ({st['reason']})" if st.get("reason") else ""))
    about.add_row("delivered", f"{st['rows_delivered']:,} rows" + (f", last at {_when(st['last_delivered_at'])}"
                                                                   if st.get("last_delivered_at") else ""))
    about.add_row("retries", f"{st['retries']:,}")
    about.add_row("dead-lettered", f"{st['dead_lettered']:,} rows" + (f" (sinkflow query \"select * from "
                                                                      f"table({s['name']}_dlq)\")"
                                                                      if st["dead_lettered"] else ""))
    about.add_row("lag", f"{st['lag']:,} rows")
    about.add_row("last error", _last_error(st) or "none")
    out.print(about)
    history = Table("since", "state", "reason", title="state history", title_justify="left")
    for entry in st.get("history", []):
        history.add_row(_when(entry["at"]), entry["state"], entry.get("reason", ""))
    if st.get("history"):
        out.print(history)


def _flat(properties: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every property, nested objects of known shape opened up."""
    for key, value in properties.items():
        if isinstance(value, dict) and value and key not in ("http_header", "headers", "header", "auth_params"):
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@sink.command("types")
@click.argument("sink_type", required=False)
@click.pass_context
def sink_types(ctx: click.Context, sink_type: str | None) -> None:
    """List the sink types, or one type's properties with their defaults."""
    types = client(ctx).call("GET", "/api/v1beta2/sink-types")  # type: ignore[union-attr]
    if sink_type is None:
        out.print("  ".join(sorted(types)))
        return
    if sink_type not in types:
        raise click.ClickException(f"unknown sink type '{sink_type}' (known: {', '.join(sorted(types))})")
    schema = types[sink_type]
    table = Table("property", "required", "default", "meaning", title=f"{sink_type} sink")
    one_of = {name: [choice[0] for choice in group]
              for group in schema.get("x-one-of", []) for choice in group for name in choice}
    for name, prop in schema["properties"].items():
        default = "" if "default" not in prop else json.dumps(prop["default"], ensure_ascii=False)
        required = "yes" if name in schema.get("required", []) else ""
        if name in one_of:
            required = "one of " + " / ".join(one_of[name])
        meaning = prop.get("x-help") or prop.get("description", "")
        if name in schema["secrets"] and "secret" not in meaning:
            meaning += " (a secret: never shown back)"
        table.add_row(name, required, default, meaning)
    out.print(table)


def _sink_action(action: str) -> click.Command:
    @click.command(action, help=f"{action.capitalize()} a sink (by id or name).")
    @click.argument("sink_id")
    @click.pass_context
    def command(ctx: click.Context, sink_id: str) -> None:
        api = client(ctx)
        if action == "delete":
            api.call("DELETE", f"/api/v1beta2/sinks/{sink_id}")
        else:
            api.call("POST", f"/api/v1beta2/sinks/{sink_id}/{action}")
        out.print(f"{action}d {sink_id}" if action.endswith("e") else f"{action}ed {sink_id}")

    return command


for _action in ("pause", "resume", "restart", "delete"):
    sink.add_command(_sink_action(_action))


if __name__ == "__main__":
    main()
