"""Stream statements end to end on a real store: CREATE (defaults, keyed, random, types) → SHOW
CREATE / DESCRIBE / SHOW STREAMS / INSERT and table() reads, and their errors. The pairs are in
tests/fixtures/streams.sql."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sinkflow.engine import Engine
from sinkflow.errors import SinkflowError
from sinkflow.sql.defaults import compile_default
from sinkflow.streams.store import StreamStore

FIXTURES = Path(__file__).parent.parent / "fixtures" / "streams.sql"


def _cases() -> list[tuple[str, str]]:
    text = "\n".join(line for line in FIXTURES.read_text().splitlines() if not line.startswith("-- "))
    cases = []
    for block in re.split(r"^-{10,}$", text, flags=re.MULTILINE):
        if block.strip():
            given, expected = block.split("\n==>\n")
            cases.append((given.strip(), expected.strip("\n")))
    return cases


CASES = _cases()


def _render(result: object) -> str:
    table = getattr(result, "table", None)
    if table is None:
        return str(result.message)  # type: ignore[attr-defined]
    if table.schema.names == ["statement"]:
        return table.column(0)[0].as_py()
    return "\n".join(" | ".join(str(v) for v in row.values()) for row in table.to_pylist())


@pytest.mark.parametrize(("given", "expected"), CASES, ids=[c[0].splitlines()[-1][:60] for c in CASES])
def test_statements(tmp_path: Path, given: str, expected: str) -> None:
    store = StreamStore(tmp_path, defaults=compile_default)
    try:
        engine = Engine(store)
        statements = [s for s in re.split(r";\n", given) if s.strip()]
        for statement in statements[:-1]:
            engine.execute(statement)
        try:
            actual = _render(engine.execute(statements[-1]))
        except SinkflowError as err:
            actual = f"error: {err.message}"
        if expected.startswith("error: "):
            assert actual.startswith(expected), actual
        else:
            assert actual == expected
    finally:
        store.close()
