"""Statements as Proton's tests write them, answered as Proton answers them: each case of
``fixtures/proton_results*.sql`` is sent to a sinkflow server (a subprocess) through the
ClickHouse-style HTTP interface Proton's clients use, and its TabSeparated answer compared with
the text Proton prints."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.servers.sinkflow import SinkflowServer, server  # noqa: F401 - fixture

# proton_results.sql and the files of each engineer's cases, proton_results_<name>.sql.
FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("proton_results*.sql"))


@dataclass(frozen=True)
class Case:
    setup: tuple[str, ...]
    statement: str
    expected: str


def read_cases(text: str) -> list[Case]:
    """The cases of the fixture file (its first comment says how they are written)."""
    cases = []
    for block in text.split("\n\n"):
        lines = [line for line in block.splitlines() if not line.startswith("--")]
        if "==>" not in lines:
            continue
        at = lines.index("==>")
        statements = [s.strip() for s in "\n".join(lines[:at]).split(";\n")]
        cases.append(Case(tuple(statements[:-1]), statements[-1], "".join(line + "\n" for line in lines[at + 1:])))
    return cases


CASES = [case for path in FIXTURES for case in read_cases(path.read_text())]


@pytest.fixture(scope="module")
def http(server: SinkflowServer) -> Iterator[httpx.Client]:  # noqa: F811 - the fixture
    with server.client() as client:  # one server for the module: the cases build on each other's streams
        yield client


def answer(http: httpx.Client, sql: str) -> str:
    response = http.post("/", content=sql)
    assert response.status_code == 200, f"{sql}: {response.text}"
    return response.text


@pytest.mark.parametrize("case", CASES, ids=[c.statement.splitlines()[0][:60] for c in CASES])
def test_answer_is_protons(http: httpx.Client, case: Case) -> None:
    for sql in case.setup:
        answer(http, sql)
    assert answer(http, case.statement) == case.expected


def test_the_fixture_file_has_cases() -> None:
    assert len(CASES) >= 20
    assert all(c.statement for c in CASES)
