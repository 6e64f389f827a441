"""`marketlake sql`: one query, output formats, version pins and the shell on piped stdin."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines.commands.sql import format_result, parse_version_pins, run_shell
from warehouse.analyst import open_catalog
from warehouse.errors import ConfigError
from warehouse.lake import Lake

REPO = Path(__file__).resolve().parents[2]
HOURS = 30
FIRST_HOURS = 20


@pytest.fixture(scope="module")
def lake(small_lake: Callable[..., Lake]) -> Lake:
    """Two landings of simulated candles, each refreshed: gold v0 has FIRST_HOURS, v1 HOURS."""
    return small_lake(hours=HOURS, first_hours=FIRST_HOURS, seed=5)


def marketlake(
    lake: Lake, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MARKETLAKE_LAKE_URI": lake.uri,
        "MARKETLAKE_HOME": str(Path(lake.uri).parent / "home"),
    }
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "sql", *args],
        cwd=REPO,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("pins", "expected"),
    [
        # no flag: no pins
        (None, {}),
        # one pin
        (["gold.features=3"], {"gold.features": 3}),
        # several, spaces tolerated
        (["gold.features = 0", "silver.candles=12"], {"gold.features": 0, "silver.candles": 12}),
    ],
)
def test_version_pins_parse(pins: list[str] | None, expected: dict[str, int]) -> None:
    assert parse_version_pins(pins) == expected


@pytest.mark.parametrize(
    "pin",
    [
        "gold.features",  # no version
        "gold.features=-1",  # negative
        "=3",  # no table
        "gold.features=latest",  # not a number
    ],
)
def test_bad_version_pins_are_config_errors(pin: str) -> None:
    with pytest.raises(ConfigError, match="TABLE=VERSION"):
        parse_version_pins([pin])


def test_formats_render_the_same_rows(lake: Lake) -> None:
    con = open_catalog(lake)
    query = "select symbol, ts, return_1h from gold.features order by ts, symbol limit 4"
    as_json = json.loads(format_result(con.sql(query), "json"))
    as_csv = list(csv.DictReader(io.StringIO(format_result(con.sql(query), "csv"))))
    table = format_result(con.sql(query), "table")
    assert (
        [r["symbol"] for r in as_json]
        == [r["symbol"] for r in as_csv]
        == ["BTCUSDT", "ETHUSDT"] * 2
    )
    assert (
        as_json[0]["ts"].endswith("+00:00") and as_json[0]["return_1h"] is None
    )  # NaN/NULL -> null
    assert "return_1h" in table and "BTCUSDT" in table
    assert format_result(None, "table") == ""


def test_the_demo_query_works_from_the_command_line(lake: Lake) -> None:
    result = marketlake(lake, "select * from gold.features limit 5")
    assert result.returncode == 0, result.stderr
    assert "5 rows" in result.stdout and "symbol" in result.stdout


def test_version_of_reads_an_older_table_version(lake: Lake) -> None:
    query = "select count(*) as n from gold.features"
    latest = marketlake(lake, "--format", "json", query)
    pinned = marketlake(lake, "--format", "json", "--version-of", "gold.features=0", query)
    assert json.loads(latest.stdout) == [{"n": 2 * HOURS}]
    assert json.loads(pinned.stdout) == [{"n": 2 * FIRST_HOURS}]
    missing = marketlake(lake, "--version-of", "gold.features=7", query)
    assert missing.returncode == 2 and "versions 0..1" in missing.stderr


def test_shell_on_piped_stdin(lake: Lake) -> None:
    script = "\n".join(
        [
            ".tables",
            "select count(*) as n",  # a statement over two lines
            "  from silver.candles;",
            "select * from no_such_table;",  # an error: reported, the shell goes on
            ".format csv",
            "select 42 as answer;",
            ".quit",
            "select 'never run';",
        ]
    )
    result = marketlake(lake, stdin=script)
    assert result.returncode == 1  # one statement failed
    assert "gold.features" in result.stdout and "not materialized yet" in result.stdout
    assert str(2 * HOURS) in result.stdout
    assert "Error: query `select * from no_such_table;` failed" in result.stdout
    assert "answer\n42" in result.stdout
    assert "never run" not in result.stdout
    assert "marketlake>" not in result.stdout  # no prompt when stdin is not a terminal


def test_shell_prompts_and_history(lake: Lake) -> None:
    con = open_catalog(lake)
    out = io.StringIO()
    code = run_shell(con, [".history gold.features\n", "select 1 as one\n"], out, lake=lake)
    text = out.getvalue()
    assert code == 0
    assert text.startswith("marketlake> ") and "version 1" in text and "version 0" in text
    assert "one" in text  # the statement without ';' runs at end of input
