"""How much of Timeplus's SQL runs on sinkflow with Proton's results.

Two corpora, read from git snapshots of Timeplus's repositories (no work trees needed):

* **docs** — every ```sql block of the pages of ``timeplus-io/docs`` (functions, query syntax,
  streams, windows, joins, …), run page by page in a fresh server (with the demo streams
  ``car_live_data``/``dim_car_info``), plus the inline function examples of the functions pages
  (`` `lower('ABC')` … returns `abc` ``) whose results are compared. Syntax templates
  (``<stream_name>``, ``[IF NOT EXISTS]``) are skipped. A streaming query is accepted when it
  runs ``--stream-seconds`` without an error.
* **proton** — the SQL tests of ``timeplus-io/proton`` ``tests/queries_ported/0_stateless`` that
  have a ``.reference`` (Proton's expected ``TabSeparated`` output), each file in a fresh server.
  As Proton's client does, a ``SET query_mode = …`` (or ``join_use_nulls``) is sent along with
  every later query.
  A statement marked ``-- { serverError … }`` is right when it fails. Each statement's output is
  aligned with the reference (in order; after a failed statement the next output is searched
  for); a file passes when its whole output equals the reference.

Usage::

    python bench/compat.py --docs /path/to/docs.git --proton /path/to/proton.git [--sample 400]
        [--seed 1] [--failures 30] [--only docs|proton] [--json out.json]

It prints acceptance and expected-result rates per corpus and the most frequent failures
(error messages with names and positions blanked, so alike failures group together).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipelines_env import temporary_pipelines  # noqa: E402

from sinkflow.api.text_formats import TEXT_FORMATS, format_header, format_rows, split_format  # noqa: E402
from sinkflow.engine.limits import CancelScope  # noqa: E402
from sinkflow.runtime.sql_pipelines import SqlPipelines  # noqa: E402
from sinkflow.streams.demo import ensure_demo_streams  # noqa: E402

# --- reading the repositories -----------------------------------------------------------------


def git_files(repo: Path, prefix: str) -> list[str]:
    out = subprocess.run(["git", "--git-dir", str(repo), "ls-tree", "-r", "--name-only", "HEAD", prefix],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


def git_text(repo: Path, path: str) -> str:
    return subprocess.run(["git", "--git-dir", str(repo), "show", f"HEAD:{path}"], capture_output=True,
                          check=True).stdout.decode("utf-8", "replace")


# --- statements ---------------------------------------------------------------------------------


@dataclass
class Statement:
    sql: str
    expect_error: bool = False


def split_statements(text: str) -> list[Statement]:
    """``text`` cut at top-level semicolons; comments dropped, except a ``{ serverError … }`` /
    ``{ clientError … }`` mark, which makes the statement it follows (or is inside) expect an error."""
    statements: list[Statement] = []
    buf: list[str] = []
    expect = False
    i, n = 0, len(text)

    def flush() -> None:
        nonlocal expect
        sql = "".join(buf).strip()
        buf.clear()
        if sql:
            statements.append(Statement(sql, expect))
        expect = False

    while i < n:
        c = text[i]
        if c in "'\"`":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            buf.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("--", i) or c == "#" and (i == 0 or text[i - 1] == "\n"):
            j = text.find("\n", i)
            j = n if j < 0 else j
            comment = text[i:j]
            if re.search(r"\{\s*(serverError|clientError)", comment):
                if "".join(buf).strip():
                    expect = True
                elif statements:
                    statements[-1].expect_error = True
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c == ";":
            flush()
            i += 1
        else:
            buf.append(c)
            i += 1
    flush()
    return statements


_TEMPLATE = re.compile(r"<[a-z_ ]+>|\[\s*(IF NOT EXISTS|IF EXISTS|OR REPLACE|db\.|database\.)|\.\.\.|…|\[,|\]\s*\[",
                       re.IGNORECASE)
_SQL_START = re.compile(r"^\s*(SELECT|WITH|CREATE|INSERT|DROP|ALTER|SHOW|DESCRIBE|DESC|EXPLAIN|SET|USE|SYSTEM|"
                        r"DELETE|TRUNCATE|OPTIMIZE|RENAME|EXISTS|\()", re.IGNORECASE)


def is_template(sql: str) -> bool:
    """Whether ``sql`` is a syntax description rather than a runnable statement."""
    return bool(_TEMPLATE.search(sql)) or not _SQL_START.match(sql)


_FENCE = re.compile(r"```(?:sql|SQL)[^\n]*\n(.*?)```", re.DOTALL)
_EXAMPLE = re.compile(
    r"`\s*((?:select\s+)?[a-z_0-9]+\((?:[^`]|``)*\))\s*`[^`\n]{0,60}?"
    r"(?:returns?|gets?|get|will be|is|=>|→|to get|results? in|you get|yields?)[^`\n]{0,40}?`([^`]*)`",
    re.IGNORECASE)
_COLUMN_ARG = re.compile(r"(?<!['\w.])\b(?!(?:true|false|null|nan|inf|interval|now|today|array|map|tuple|[0-9]))"
                         r"[a-z_][a-z_0-9]*\b(?!\s*\()(?![^']*'(?:[^']*'[^']*')*[^']*$)", re.IGNORECASE)


def docs_pages(repo: Path) -> list[str]:
    return [p for p in git_files(repo, "docs") if p.endswith((".md", ".mdx")) and "release" not in p
            and not re.search(r"enterprise-v|private-beta|public-beta|v\d-release", p)]


def page_statements(text: str) -> list[Statement]:
    return [s for block in _FENCE.findall(text) for s in split_statements(block) if not is_template(s.sql)]


def function_examples(text: str) -> list[tuple[str, str]]:
    """(SELECT statement, expected text) from the inline examples of a functions page, for calls
    whose arguments are constants (no column names)."""
    examples = []
    for call, expected in _EXAMPLE.findall(text):
        call = call.strip()
        if call.lower().startswith("select"):
            call = call[6:].strip()
        if "[" in call.split("(")[0] or _COLUMN_ARG.search(call.split("(", 1)[1]):
            continue
        examples.append((f"SELECT {call}", expected.strip()))
    return examples


# --- running ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    ok: bool
    output: str = ""
    error: str = ""
    streaming: bool = False


async def run_statement(pipelines: SqlPipelines, sql: str, timeout: float, stream_seconds: float) -> Outcome:
    """Run one statement: its TabSeparated output, or the error it raised. A streaming query runs
    ``stream_seconds`` (or until it ends); a statement still computing after ``timeout`` is
    cancelled and counted as an error."""
    scope = CancelScope()
    bare, written = split_format(sql)
    fmt = "TabSeparated"
    if written in TEXT_FORMATS:  # the client's FORMAT, as the HTTP interface serves it
        sql, fmt = bare, written

    async def work():  # type: ignore[no-untyped-def]
        with scope.active():
            return await pipelines.execute(sql)

    task = asyncio.ensure_future(work())
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        scope.cancel("timeout")
        try:
            await asyncio.wait_for(task, 5)
        except BaseException:  # noqa: BLE001 - whatever the cancelled statement raised
            pass
        return Outcome(False, error=f"timed out after {timeout:g}s")
    try:
        result = task.result()
    except Exception as exc:  # noqa: BLE001 - every failure is a measured outcome
        return Outcome(False, error=f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}")
    if result.kind == "status":
        return Outcome(True)
    if result.kind == "rows":
        return Outcome(True, format_header(result.table.schema, fmt) + format_rows(result.table, fmt))
    execution = result.execution
    parts = [format_header(execution.schema, fmt)]
    deadline = time.monotonic() + stream_seconds
    try:
        while not execution.finished and time.monotonic() < deadline:
            for batch in await execution.step(0.1):
                parts.append(format_rows(batch, fmt))
    except Exception as exc:  # noqa: BLE001
        return Outcome(False, error=f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}",
                       streaming=True)
    finally:
        execution.close()
    return Outcome(True, "".join(parts), streaming=not execution.finished)


def normalize_error(error: str) -> str:
    """An error with its specifics blanked, so alike failures count together."""
    error = re.sub(r"'[^']*'", "'…'", error)
    error = re.sub(r"\d+", "N", error)
    return error[:150]


# --- corpora ------------------------------------------------------------------------------------


@dataclass
class Tally:
    statements: int = 0
    accepted: int = 0
    compared: int = 0
    matched: int = 0
    files: int = 0
    files_passed: int = 0
    errors: collections.Counter = field(default_factory=collections.Counter)
    names: collections.Counter = field(default_factory=collections.Counter)
    mismatches: list = field(default_factory=list)
    examples: dict = field(default_factory=dict)

    def fail(self, error: str, sql: str) -> None:
        key = normalize_error(error)
        self.errors[key] += 1
        self.examples.setdefault(key, sql[:200])
        named = re.match(r"SqlError: (unknown (?:function|stream|column|setting) '[^']*')", error)
        if named:
            self.names[named[1]] += 1


def _norm_expected(text: str) -> str:
    return re.sub(r"\s+", "", text.replace('"', "'")).lower()


async def run_docs(repo: Path, args: argparse.Namespace) -> tuple[Tally, Tally]:
    blocks, inline = Tally(), Tally()
    for page in docs_pages(repo):
        text = git_text(repo, page)
        statements = page_statements(text)
        examples = function_examples(text) if "functions" in page else []
        if not statements and not examples:
            continue
        async with temporary_pipelines("compat-docs-") as pipelines:
            ensure_demo_streams(pipelines.store)
            for st in statements:
                blocks.statements += 1
                out = await run_statement(pipelines, st.sql, args.timeout, args.stream_seconds)
                if out.ok:
                    blocks.accepted += 1
                else:
                    blocks.fail(out.error, f"[{page}] {st.sql}")
            for sql, expected in examples:
                inline.statements += 1
                out = await run_statement(pipelines, sql, args.timeout, args.stream_seconds)
                if not out.ok:
                    inline.fail(out.error, f"[{page}] {sql}")
                    continue
                inline.accepted += 1
                inline.compared += 1
                got = out.output.rstrip("\n")
                if _norm_expected(got) == _norm_expected(expected) or _norm_expected(got.strip("'")) == _norm_expected(
                        expected.strip("'")):
                    inline.matched += 1
                else:
                    inline.mismatches.append((sql, expected, got))
    return blocks, inline


def _align(reference: list[str], outputs: list[Outcome], statements: list[Statement]) -> list[bool]:
    """Whether each statement's output is where it belongs in ``reference`` (see the module docstring)."""
    matched = []
    pos = 0
    resync = False
    for st, out in zip(statements, outputs, strict=True):
        if st.expect_error:
            matched.append(not out.ok)
            continue
        if not out.ok:
            matched.append(False)
            resync = True
            continue
        lines = out.output.splitlines()
        if not lines:
            matched.append(True)
            continue
        if reference[pos:pos + len(lines)] == lines:
            matched.append(True)
            pos += len(lines)
            resync = False
            continue
        found = -1
        if resync:
            for start in range(pos, len(reference) - len(lines) + 1):
                if reference[start:start + len(lines)] == lines:
                    found = start
                    break
        if found >= 0:
            matched.append(True)
            pos = found + len(lines)
            resync = False
        else:
            matched.append(False)
            resync = True
    return matched


async def run_proton(repo: Path, args: argparse.Namespace) -> Tally:
    tally = Tally()
    names = git_files(repo, "tests/queries_ported/0_stateless")
    refs = {n[:-len(".reference")] for n in names if n.endswith(".reference")}
    tests = sorted(n[:-4] for n in names if n.endswith(".sql") and n[:-4] in refs
                   and (args.match is None or args.match.search(n)))
    if args.sample and args.sample < len(tests):
        tests = sorted(random.Random(args.seed).sample(tests, args.sample))
    for number, test in enumerate(tests, 1):
        started = time.monotonic()
        statements = split_statements(git_text(repo, test + ".sql"))
        reference = git_text(repo, test + ".reference")
        outputs = []
        session: dict[str, str] = {}
        async with temporary_pipelines("compat-proton-") as pipelines:
            for st in statements:
                sql = with_session_settings(st.sql, session)
                out = await run_statement(pipelines, sql, args.timeout, args.stream_seconds)
                outputs.append(out)
                tally.statements += 1
                if out.ok != st.expect_error:
                    tally.accepted += 1
                elif not out.ok:
                    tally.fail(out.error, f"[{test.rsplit('/', 1)[1]}] {st.sql}")
                else:
                    tally.fail("accepted a statement Proton refuses", f"[{test.rsplit('/', 1)[1]}] {st.sql}")
        tally.files += 1
        if args.progress:
            print(f"{number}/{len(tests)} {test.rsplit('/', 1)[1]}: {time.monotonic() - started:.1f}s",
                  file=args.progress, flush=True)
        ref_lines = reference.splitlines()
        for ok, st, out in zip(_align(ref_lines, outputs, statements), statements, outputs, strict=True):
            tally.compared += 1
            tally.matched += ok
            if not ok and out.ok and not st.expect_error:
                tally.mismatches.append((f"[{test.rsplit('/', 1)[1]}] {st.sql[:150]}", "", out.output[:150]))
        produced = "".join(o.output for o in outputs)
        if all(o.ok != s.expect_error for o, s in zip(outputs, statements, strict=True)) and \
                produced.rstrip("\n") == reference.rstrip("\n"):
            tally.files_passed += 1
    return tally


_SET = re.compile(r"^\s*SET\s+(\w+)\s*=\s*('[^']*'|\S+)\s*$", re.IGNORECASE)
_QUERY = re.compile(r"^\s*(SELECT|WITH)\b", re.IGNORECASE)


#: The settings a ``SET`` keeps for the session's later queries.
_SESSION_SETTINGS = ("query_mode", "join_use_nulls")


def with_session_settings(sql: str, session: dict[str, str]) -> str:
    """``sql`` as Proton's client sends it: the client keeps the values of ``SET query_mode = …``
    (and of the other _SESSION_SETTINGS) and sends them with every later query (as its SETTINGS
    here, when it has none of its own)."""
    found = _SET.match(sql)
    if found and found[1].lower() in _SESSION_SETTINGS:
        session[found[1].lower()] = found[2]
    if session and _QUERY.match(sql) and not re.search(r"\bSETTINGS\b|\bFORMAT\b", sql, re.IGNORECASE):
        return sql + " SETTINGS " + ", ".join(f"{k}={v}" for k, v in session.items())
    return sql


_CONTEXT = re.compile(r"unknown stream|does not exist|already exists|no stream, external stream or view")


def _rate(a: int, b: int) -> str:
    return f"{a}/{b} = {100 * a / b:.1f}%" if b else "0/0"


def report(name: str, tally: Tally, args: argparse.Namespace) -> dict:
    print(f"\n== {name}")
    print(f"  statements accepted (errors where Proton errs): {_rate(tally.accepted, tally.statements)}")
    if not tally.files:
        # A docs page may use streams another page creates: such statements fail on any server.
        context = sum(count for error, count in tally.errors.items() if _CONTEXT.search(error))
        print(f"  … not counting {context} that name streams the page never creates (or creates twice): "
              f"{_rate(tally.accepted, tally.statements - context)}")
    if tally.compared:
        print(f"  results as Proton's: {_rate(tally.matched, tally.compared)}")
    if tally.files:
        print(f"  files whose whole output equals the reference: {_rate(tally.files_passed, tally.files)}")
    if args.failures:
        print("  most frequent failures:")
        for error, count in tally.errors.most_common(args.failures):
            print(f"    {count:4d}  {error}\n          e.g. {tally.examples[error]!r}")
        for sql, expected, got in tally.mismatches[:args.failures]:
            print(f"    mismatch: {sql!r}: expected {expected!r}, got {got!r}")
    return {"statements": tally.statements, "accepted": tally.accepted, "compared": tally.compared,
            "matched": tally.matched, "files": tally.files, "files_passed": tally.files_passed,
            "errors": tally.errors.most_common(), "names": tally.names.most_common()}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=Path, help="git dir of timeplus-io/docs")
    parser.add_argument("--proton", type=Path, help="git dir of timeplus-io/proton")
    parser.add_argument("--only", choices=("docs", "proton"))
    parser.add_argument("--sample", type=int, default=400, help="proton test files to run (0: all)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--match", type=re.compile, help="run only the proton test files whose name matches this regex")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds a statement may compute")
    parser.add_argument("--stream-seconds", type=float, default=0.3, help="seconds a streaming query runs")
    parser.add_argument("--failures", type=int, default=25, help="failures to list per corpus")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--progress", type=argparse.FileType("w"), help="write each file's time here")
    args = parser.parse_args()
    figures = {}
    if args.docs and args.only in (None, "docs"):
        blocks, inline = await run_docs(args.docs, args)
        figures["docs"] = report("docs: ```sql blocks", blocks, args)
        figures["docs_examples"] = report("docs: inline function examples", inline, args)
    if args.proton and args.only in (None, "proton"):
        figures["proton"] = report("proton: tests/queries_ported/0_stateless", await run_proton(args.proton, args), args)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
