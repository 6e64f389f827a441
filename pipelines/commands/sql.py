"""`marketlake sql`: DuckDB over the lake's analyst catalog, one query or an interactive shell."""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, TextIO

import duckdb

from warehouse.errors import ConfigError, MarketlakeError
from warehouse.settings import Settings

FORMATS = ("table", "csv", "json")
PROMPT = "marketlake> "
CONTINUATION = "       ...> "
SHELL_HELP = """\
Statements end with ';' and may span lines. Commands:
  .tables            the catalog: every table, its Delta version and reader
  .schema TABLE      the columns of a view, e.g. .schema gold.features
  .history TABLE     the Delta versions of a table (for --version-of / time travel)
  .format FORMAT     table, csv or json
  .help              this text
  .quit              leave (also .exit or end of input)"""


def parse_version_pins(pins: Sequence[str] | None) -> dict[str, int]:
    """Parse ``--version-of`` values (``schema.table=N``) into ``{"schema.table": N}``.

    Raises:
        ConfigError: a value is not ``NAME=N`` with a non-negative integer ``N``.
    """
    versions: dict[str, int] = {}
    for pin in pins or []:
        name, sep, number = pin.partition("=")
        if not sep or not name.strip() or not number.strip().isdigit():
            raise ConfigError(f"--version-of {pin!r}: expected TABLE=VERSION, e.g. gold.features=3")
        versions[name.strip()] = int(number)
    return versions


def format_result(relation: duckdb.DuckDBPyRelation | None, fmt: str) -> str:
    """Render a query result as a box table, CSV (with a header) or a JSON list of objects.

    Args:
        relation: the result; ``None`` (a statement with no result) renders as ``""``.
        fmt: one of ``table``, ``csv``, ``json``.
    """
    if relation is None:
        return ""
    if fmt == "table":
        return str(relation).rstrip("\n")
    columns = list(relation.columns)
    rows = relation.fetchall()
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        return out.getvalue().rstrip("\n")
    if fmt == "json":
        records = [{c: _json_value(v) for c, v in zip(columns, row, strict=True)} for row in rows]
        return json.dumps(records, indent=2, default=str)
    raise ConfigError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def run_query(con: duckdb.DuckDBPyConnection, query: str) -> duckdb.DuckDBPyRelation | None:
    """Run ``query`` (one or more statements); the result of the last one, if it has rows.

    Raises:
        LakeError: a Delta table could not be read. DataError: the query failed.
    """
    from warehouse.analyst import query_error

    try:
        return con.sql(query)
    except duckdb.Error as exc:
        raise query_error(exc, query) from exc


def run_shell(
    con: duckdb.DuckDBPyConnection,
    lines: Iterable[str],
    out: TextIO,
    *,
    fmt: str = "table",
    prompt: bool = True,
    lake: Any = None,
) -> int:
    """A small SQL shell over ``con``: read statements from ``lines`` and print the results.

    Args:
        con: a catalog connection (see :func:`warehouse.analyst.open_catalog`).
        lines: the input, one line at a time (``sys.stdin`` for a person).
        out: where results and errors go.
        fmt: the starting output format (default ``table``; ``.format`` changes it).
        prompt: show prompts (default ``True``; off when the input is not a terminal).
        lake: the :class:`warehouse.lake.Lake` for ``.history`` (default ``None``: unavailable).

    Returns:
        0, or 1 if any statement or command failed (the shell goes on after a failure).
    """
    failures = 0
    buffer: list[str] = []

    def show_prompt() -> None:
        if prompt:
            out.write(CONTINUATION if buffer else PROMPT)
            out.flush()

    def execute(statement: str) -> None:
        nonlocal failures
        try:
            text = format_result(run_query(con, statement), fmt)
        except MarketlakeError as exc:
            failures += 1
            print(f"Error: {exc}", file=out)
            return
        if text:
            print(text, file=out)

    show_prompt()
    for raw in lines:
        line = raw.rstrip("\n")
        if not buffer and line.strip().startswith("."):
            command, _, argument = line.strip().partition(" ")
            if command in (".quit", ".exit"):
                return 1 if failures else 0
            try:
                fmt = _dot_command(con, command, argument.strip(), out, fmt=fmt, lake=lake)
            except MarketlakeError as exc:
                failures += 1
                print(f"Error: {exc}", file=out)
        elif line.strip():
            buffer.append(line)
            if line.rstrip().endswith(";"):
                execute("\n".join(buffer))
                buffer.clear()
        show_prompt()
    if buffer and "".join(buffer).strip():
        execute("\n".join(buffer))
    if prompt:
        out.write("\n")
    return 1 if failures else 0


def _dot_command(
    con: duckdb.DuckDBPyConnection,
    command: str,
    argument: str,
    out: TextIO,
    *,
    fmt: str,
    lake: Any,
) -> str:
    from warehouse.analyst import catalog_tables, table_history

    if command == ".tables":
        for table in catalog_tables(con):
            state = (
                f"version {table.version} ({table.reader})"
                if table.exists
                else "not materialized yet: no view"
            )
            print(f"{table.name:<24} {state}", file=out)
    elif command == ".schema":
        if not argument:
            raise ConfigError(".schema needs a table, e.g. .schema gold.features")
        print(format_result(run_query(con, f"DESCRIBE {argument}"), fmt), file=out)
    elif command == ".history":
        if lake is None or not argument:
            raise ConfigError(".history needs a table, e.g. .history gold.features")
        for entry in table_history(lake, argument):
            print(
                f"version {entry['version']:<5} {entry['timestamp']:%Y-%m-%d %H:%M:%S}  "
                f"{entry['operation']}  {entry['source'] or ''}".rstrip(),
                file=out,
            )
    elif command == ".format":
        if argument not in FORMATS:
            raise ConfigError(f".format {argument!r}: use one of {', '.join(FORMATS)}")
        return argument
    elif command == ".help":
        print(SHELL_HELP, file=out)
    else:
        raise ConfigError(f"unknown command {command}; .help lists the commands")
    return fmt


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def cmd_sql(args: argparse.Namespace, settings: Settings) -> int:
    from warehouse.analyst import open_catalog
    from warehouse.lake import Lake

    lake = Lake(settings.lake_uri, settings.storage_options)
    con = open_catalog(lake, versions=parse_version_pins(args.version_of))
    try:
        if args.query is not None:
            text = format_result(run_query(con, args.query), args.format)
            if text:
                print(text)
            return 0
        interactive = sys.stdin.isatty()
        if interactive:
            print(f"marketlake sql over {lake.uri} (.help for commands, .quit to leave)")
        return run_shell(con, sys.stdin, sys.stdout, fmt=args.format, prompt=interactive, lake=lake)
    finally:
        con.close()


def register(sub: Any) -> None:
    """Add ``marketlake sql`` to the ``marketlake`` parser."""
    help_text = "DuckDB SQL over the lake catalog (an interactive shell without QUERY)"
    sql = sub.add_parser("sql", help=help_text, description=help_text)
    sql.set_defaults(handler=cmd_sql)
    sql.add_argument("query", nargs="?", help='e.g. "select * from gold.features limit 5"')
    sql.add_argument(
        "--version-of",
        action="append",
        metavar="TABLE=N",
        help="read TABLE as of Delta version N (repeatable), e.g. gold.features=3",
    )
    sql.add_argument("--format", choices=FORMATS, default="table", help="default: table")
