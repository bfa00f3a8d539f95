"""The ``sinkflow`` command: the server, and commands that talk to a running server."""

from __future__ import annotations

import json
import re
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
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from sinkflow.errors import SinkflowError

DEFAULT_SERVER = "http://127.0.0.1:8000"
_ROW = re.compile(r"\brow (\d+)")
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
@click.option("--server", "server_url", envvar="SINKFLOW_SERVER", default=DEFAULT_SERVER, show_default=True,
              help="The sinkflow server to talk to.")
@click.option("--api-key", envvar="SINKFLOW_API_KEY", default=None, help="Sent as X-Api-Key.")
@click.pass_context
def main(ctx: click.Context, server_url: str, api_key: str | None) -> None:
    """sinkflow: streaming SQL whose results flow to Slack, e-mail, webhooks, Kafka, ClickHouse and more."""
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
@click.option("--query-timeout", default=60.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              envvar="SINKFLOW_QUERY_TIMEOUT", help="Seconds a bounded query (table(...)) may run before it is stopped.")
@click.option("--memory-limit", default=None, type=int, envvar="SINKFLOW_MEMORY_LIMIT",
              help="Bytes of memory the query engine may use [default: half of the machine's].")
@click.pass_context
def server(ctx: click.Context, host: str, port: int, data_dir: Path, no_demo: bool, log_level: str,
           query_timeout: float, memory_limit: int | None) -> None:
    """Run the server: REST API, live queries, sinks and the console."""
    import logging

    import uvicorn

    from sinkflow.api.app import create_app, data_dir_lock
    from sinkflow.api.context import ServerSettings

    settings = ServerSettings(host=host, port=port, data_dir=data_dir, demo=not no_demo, api_key=ctx.obj["api_key"],
                              query_timeout=query_timeout, memory_limit=memory_limit)
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
            uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, access_log=False)
    except SinkflowError as exc:
        raise click.ClickException(exc.message) from None


# -- query -------------------------------------------------------------------------------------


def sse_rows(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) pairs from a Server-Sent Events response; rows come as ("row", {...})."""
    event = "row"
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            yield event, json.loads(line[6:])
            event = "row"


@main.command()
@click.argument("sql")
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl"]), default="table", show_default=True)
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
            if fmt == "jsonl":
                for event, data in sse_rows(response):
                    if event == "row":
                        sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
                        sys.stdout.flush()
                    elif event == "error":
                        raise click.ClickException(data.get("message", "query failed"))
                return
            _live_table(sse_rows(response), rows)
    except httpx.ConnectError:
        raise click.ClickException(f"cannot reach the sinkflow server at {ctx.obj['url']}") from None
    except KeyboardInterrupt:
        console.print("stopped")


def _live_table(events: Iterator[tuple[str, dict[str, Any]]], keep: int) -> None:
    columns: list[str] = []
    recent: deque[dict[str, Any]] = deque(maxlen=keep)
    count, started = 0, time.monotonic()

    def render() -> Table:
        rate = count / max(time.monotonic() - started, 1e-9)
        table = Table(title=f"{count} rows · {rate:,.0f} rows/s", title_justify="left")
        for name in columns:
            table.add_column(name)
        for row in reversed(recent):
            table.add_row(*(str(row.get(name, "")) for name in columns))
        return table

    with Live(render(), console=out, refresh_per_second=4) as live:
        for event, data in events:
            if event == "query":
                columns = [c["name"] for c in data["columns"]]
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
    streams = client(ctx).call("GET", "/api/v1beta2/streams")  # type: ignore[union-attr]
    table = Table("name", "columns", "rows")
    for s in streams:
        table.add_row(s["name"], ", ".join(f"{c['name']} {c['type']}" for c in s["columns"]), str(s["row_count"]))
    out.print(table)


@stream.command("describe")
@click.argument("name")
@click.pass_context
def stream_describe(ctx: click.Context, name: str) -> None:
    s = client(ctx).call("GET", f"/api/v1beta2/streams/{name}")  # type: ignore[union-attr]
    table = Table("column", "type", title=f"{s['name']} ({s['row_count']} rows, event time: {s['event_time_column']})")
    for c in s["columns"]:
        table.add_row(c["name"], c["type"])
    out.print(table)


@stream.command("drop")
@click.argument("name")
@click.pass_context
def stream_drop(ctx: click.Context, name: str) -> None:
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


@main.group()
def sink() -> None:
    """Create and control sinks: a streaming query whose every result row goes to a destination."""


def _parse_property(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep:
        raise click.BadParameter(f"'{text}' is not key=value", param_hint="--property")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


@sink.command("create")
@click.option("--name", help="Sink name (letters, digits, _).")
@click.option("--type", "sink_type", help="http, webhook, slack, email, timeplus, kafka, pulsar, clickhouse, snowflake")
@click.option("--sql", help="The streaming query whose rows are sent.")
@click.option("--description", default="")
@click.option("--property", "-p", "props", multiple=True, help="key=value (JSON values allowed); repeat.")
@click.option("--file", "def_file", type=click.File(), help="A JSON sink definition {name, sql, type, properties}.")
@click.pass_context
def sink_create(ctx: click.Context, name: str | None, sink_type: str | None, sql: str | None, description: str,
                props: tuple[str, ...], def_file: Any) -> None:
    """Create a sink from options or from a JSON definition file."""
    body: dict[str, Any] = json.load(def_file) if def_file else {}
    for key, value in (("name", name), ("type", sink_type), ("sql", sql)):
        if value:
            body[key] = value
    if description:
        body["description"] = description
    body.setdefault("properties", {}).update(dict(_parse_property(p) for p in props))
    missing = [key for key in ("name", "type", "sql") if not body.get(key) and not (key == "sql" and body.get("query"))]
    if missing:
        raise click.UsageError(f"missing {', '.join('--' + m for m in missing)}")
    created = client(ctx).call("POST", "/api/v1beta2/sinks", json=body)  # type: ignore[union-attr]
    out.print(f"created sink {created['name']} ({created['id']})")


@sink.command("list")
@click.pass_context
def sink_list(ctx: click.Context) -> None:
    sinks = client(ctx).call("GET", "/api/v1beta2/sinks")  # type: ignore[union-attr]
    table = Table("name", "type", "state", "delivered", "retries", "dead-lettered", "lag", "last error")
    for s in sinks:
        st = s["status"]
        table.add_row(s["name"], s["type"], st["state"], str(st["rows_delivered"]), str(st["retries"]),
                      str(st["dead_lettered"]), str(st["lag"]), st["last_error"][:60])
    out.print(table)


@sink.command("show")
@click.argument("sink_id")
@click.pass_context
def sink_show(ctx: click.Context, sink_id: str) -> None:
    """Show a sink (by id or name) with its status; secrets are masked."""
    s = client(ctx).call("GET", f"/api/v1beta2/sinks/{sink_id}")  # type: ignore[union-attr]
    out.print_json(json.dumps(s))


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
    for name, prop in schema["properties"].items():
        default = "" if "default" not in prop else json.dumps(prop["default"], ensure_ascii=False)
        secret = " (secret)" if name in schema["secrets"] else ""
        table.add_row(name, "yes" if name in schema.get("required", []) else "", default,
                      prop.get("description", "") + secret)
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
