"""User-defined functions written in Python or served over HTTP, callable from any query.

Each function is a DuckDB Arrow function of the engine's shared database (:func:`compile.connect`)
named ``__udf_<name>``, and a Timeplus name in the function table that calls it, so queries,
views and streaming queries use it like a built-in. DuckDB hands it a batch of rows at a time:
a Python function gets one list per argument and returns a list (Timeplus's calling
convention); a remote function POSTs the batch as JSON columns. Definitions are kept in
``data_dir/functions.json`` (a remote function's auth key sealed with the server's key, as the
catalog seals sinks' secrets) and installed again when the server starts.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import duckdb
import pyarrow as pa

from sinkflow.engine.compile import define_functions
from sinkflow.engine.result import StatementResult
from sinkflow.errors import AlreadyExists, InvalidInput
from sinkflow.secret_box import SecretBox, private_file
from sinkflow.sql.function_statements import (
    CreatePythonFunction,
    CreateRemoteFunction,
    FunctionStatement,
    PythonPackages,
)
from sinkflow.sql.functions.registry import FUNCTIONS, register, same_args
from sinkflow.streams.types import parse_type

__all__ = ["UserFunctionFailed", "UserFunctions"]

_log = logging.getLogger(__name__)
_PREFIX = "__udf_"
_REMOTE_TIMEOUT_S = 30.0
Definition = CreatePythonFunction | CreateRemoteFunction
# The names in the (process-wide) function table that are user functions, not built-ins.
_installed: set[str] = set()


class UserFunctionFailed(InvalidInput):
    """A user function raised, answered badly or returned the wrong number of values."""


class UserFunctions:
    """The user functions of one server; all of them installed in the engine on construction."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / "functions.json"
        self._box = SecretBox.for_data_dir(Path(data_dir))
        self.functions: dict[str, Definition] = {}
        if self.path.exists():
            for saved in json.loads(self.path.read_text()):
                kind = CreateRemoteFunction if saved.pop("kind") == "remote" else CreatePythonFunction
                if saved.get("auth_key"):
                    saved["auth_key"] = self._box.open(saved["auth_key"])
                fields = {k: tuple(map(tuple, v)) if k == "arguments" else v for k, v in saved.items()}
                definition = kind(**fields)
                self.functions[definition.name] = definition
                try:
                    _install(definition)
                except InvalidInput as exc:  # e.g. a module it imports was uninstalled: the rest still load
                    _log.warning("user function not loaded: %s", exc)

    def execute(self, stmt: FunctionStatement) -> StatementResult:
        """Perform ``stmt``. Raises :class:`AlreadyExists` (a CREATE without OR REPLACE of an
        existing function), :class:`InvalidInput` for
        code that does not compile or define the function, a built-in's name, or a package
        install (never done from SQL); nothing is changed then."""
        if isinstance(stmt, PythonPackages):
            return _packages(stmt)
        name = stmt.name
        if name in self.functions and not stmt.or_replace:
            raise AlreadyExists(f"function '{name}' already exists (use CREATE OR REPLACE FUNCTION)")
        if name.lower() in FUNCTIONS and name.lower() not in _installed:
            raise InvalidInput(f"function '{name}' is a built-in function; choose another name")
        if not stmt.arguments:
            raise InvalidInput(f"function '{name}' needs at least one argument")
        call = _python(stmt) if isinstance(stmt, CreatePythonFunction) else _remote(stmt)
        if name in self.functions:
            _uninstall(name)
        _install(stmt, call)
        self.functions[name] = stmt
        self._save()
        return StatementResult("status", f"created function '{name}'")

    def drop(self, name: str) -> bool:
        """Drop the function ``name``; False (nothing changed) when there is none of that name."""
        if name not in self.functions:
            return False
        _uninstall(name)
        del self.functions[name]
        self._save()
        return True

    def _save(self) -> None:
        saved = [{"kind": "remote" if isinstance(d, CreateRemoteFunction) else "python", **dataclasses.asdict(d)}
                 for d in self.functions.values()]
        for definition in saved:
            if definition.get("auth_key"):
                definition["auth_key"] = self._box.seal(definition["auth_key"])
        temporary = self.path.with_suffix(".tmp")
        private_file(temporary)
        temporary.write_text(json.dumps(saved))
        temporary.replace(self.path)


def _packages(stmt: PythonPackages) -> StatementResult:
    if stmt.action != "list":
        raise InvalidInput(f"SYSTEM {stmt.action.upper()} PYTHON PACKAGE is refused: installing code from SQL "
                           "would let any SQL user run arbitrary code on the server; the operator installs "
                           "packages into sinkflow's Python environment instead")
    installed = sorted({(d.metadata["Name"], d.version) for d in metadata.distributions() if d.metadata["Name"]},
                       key=lambda nv: nv[0].lower())
    table = pa.table({"package_name": pa.array([n for n, _ in installed], pa.string()),
                      "version": pa.array([v for _, v in installed], pa.string())})
    return StatementResult("rows", table=table, count=table.num_rows)


def _python(stmt: CreatePythonFunction) -> Callable[..., list[object]]:
    """The Python function ``stmt.name`` that ``stmt.body`` defines. Raises :class:`InvalidInput`
    for code that does not compile or run, or defines no such function."""
    namespace: dict[str, object] = {"__name__": f"udf_{stmt.name}"}
    try:
        exec(compile(stmt.body, f"<function {stmt.name}>", "exec"), namespace)  # noqa: S102 - the point of a Python UDF
    except Exception as exc:  # noqa: BLE001 - any error in the user's code is theirs to see
        raise InvalidInput(f"function '{stmt.name}': its Python code fails: {type(exc).__name__}: {exc}") from None
    function = namespace.get(stmt.name)
    if not callable(function):
        raise InvalidInput(f"function '{stmt.name}': its Python code defines no function named '{stmt.name}'")
    return function


def _remote(stmt: CreateRemoteFunction) -> Callable[..., list[object]]:
    """A function POSTing its argument lists as JSON columns to ``stmt.url``, answering ``result``."""
    headers = {"Content-Type": "application/json"}
    if stmt.auth_header:
        headers[stmt.auth_header] = stmt.auth_key or ""
    names = [name for name, _ in stmt.arguments]

    def call(*columns: list[object]) -> list[object]:
        body = json.dumps(dict(zip(names, columns)), default=str).encode()
        request = urllib.request.Request(stmt.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=_REMOTE_TIMEOUT_S) as response:  # noqa: S310 - the user's URL
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"POST {stmt.url} answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise RuntimeError(f"POST {stmt.url} unreachable: {getattr(exc, 'reason', exc)}") from None
        except ValueError:
            raise RuntimeError(f"POST {stmt.url} answered something that is not JSON") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("result"), list):
            raise RuntimeError(f'POST {stmt.url} answered no {{"result": [...]}} list')
        return answer["result"]

    return call


def _install(stmt: Definition, call: Callable[..., list[object]] | None = None) -> None:
    """Make ``stmt`` callable from SQL (compiling its code when ``call`` is not given)."""
    if call is None:
        call = _python(stmt) if isinstance(stmt, CreatePythonFunction) else _remote(stmt)
    kind = "Python function" if isinstance(stmt, CreatePythonFunction) else "remote function"
    result_type = parse_type(stmt.returns).arrow
    arrow_types = [parse_type(text).arrow for _, text in stmt.arguments]
    name = stmt.name

    def batch(*columns: pa.Array) -> pa.Array:
        rows = len(columns[0])
        try:
            results = list(call(*(column.to_pylist() for column in columns)))
        except Exception as exc:  # noqa: BLE001 - the user's code: report its error, named
            raise UserFunctionFailed(f"{kind} '{name}' failed: {type(exc).__name__}: {exc}") from None
        if len(results) != rows:
            raise UserFunctionFailed(f"{kind} '{name}' returned {len(results)} values for {rows} rows "
                                     "(it gets a list per argument and must return a list as long)")
        try:
            return pa.array(results, result_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            raise UserFunctionFailed(f"{kind} '{name}' returned values that are not {stmt.returns}: {exc}") from None

    # DuckDB counts the Python function's parameters: give it one per argument.
    batch.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(f"a{i}", inspect.Parameter.POSITIONAL_ONLY) for i in range(len(arrow_types))])
    if name.lower() in _installed:  # by another server of this process (tests, benchmarks)
        _uninstall(name)
    con = define_functions()
    duck_types = con.from_arrow(pa.table({f"a{i}": pa.array([], t) for i, t in enumerate([*arrow_types, result_type])})).types
    con.create_function(_PREFIX + name, batch, duck_types[:-1], duck_types[-1], type="arrow",
                        null_handling="special", side_effects=isinstance(stmt, CreateRemoteFunction))
    register(name.lower(), same_args(_PREFIX + name), len(arrow_types))
    _installed.add(name.lower())


def _uninstall(name: str) -> None:
    FUNCTIONS.pop(name.lower(), None)
    _installed.discard(name.lower())
    try:
        define_functions().remove_function(_PREFIX + name)
    except duckdb.Error:  # not installed (its code failed to load at start)
        pass
