"""The DuckDB analyst catalog over a small real lake: views, missing tables, time travel."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from warehouse.analyst import (
    catalog_tables,
    catalog_views,
    delta_extension_path,
    open_catalog,
    table_as_of,
    table_history,
)
from warehouse.catalog import TABLES
from warehouse.errors import ConfigError, LakeError
from warehouse.lake import Lake

HOURS = 60
FIRST_HOURS = 40
SYMBOLS = ["BTCUSDT", "ETHUSDT"]


@pytest.fixture(scope="module")
def lake(small_lake: Callable[..., Lake]) -> Lake:
    """Two landings of simulated candles, each followed by silver and gold refreshes.

    gold/features: version 0 holds FIRST_HOURS hours per symbol, version 1 all HOURS.
    """
    return small_lake(hours=HOURS, first_hours=FIRST_HOURS, seed=11, symbols=SYMBOLS)


def test_views_sql_covers_every_catalog_table_with_its_path() -> None:
    views = {view.name: view.path for view in catalog_views()}
    assert {name: views[name] for name in TABLES} == TABLES
    assert {view.schema for view in catalog_views()} <= {"bronze", "silver", "gold"}


@pytest.mark.parametrize(
    "sql",
    [
        # a view reading two tables cannot be mapped to one Delta table
        "-- view: gold.x\nCREATE VIEW gold.x AS SELECT * FROM delta_scan('{{lake}}/a') "
        "UNION ALL SELECT * FROM delta_scan('{{lake}}/b');",
        # a view that reads no lake table at all
        "-- view: gold.x\nCREATE VIEW gold.x AS SELECT 1;",
    ],
)
def test_a_view_must_read_exactly_one_table(sql: str) -> None:
    with pytest.raises(ConfigError, match=r"gold\.x"):
        catalog_views(sql)


def test_delta_extension_comes_from_the_installed_wheel() -> None:
    path = delta_extension_path()
    assert path is not None and path.name == "delta.duckdb_extension"
    assert f"v{duckdb.__version__}" in str(path)


@pytest.mark.parametrize("reader", ["delta", "arrow"])
def test_views_read_the_latest_versions_and_skip_missing_tables(lake: Lake, reader: str) -> None:
    con = open_catalog(lake, reader=reader)
    tables = {t.name: t for t in catalog_tables(con)}
    assert set(tables) >= set(TABLES)
    assert tables["gold.features"].version == 1 and tables["gold.features"].reader == reader
    assert not tables["gold.predictions"].exists and tables["gold.predictions"].version is None
    rows = con.sql("select count(*), count(distinct symbol) from gold.features").fetchone()
    assert rows == (HOURS * len(SYMBOLS), len(SYMBOLS))
    closes = con.sql("select count(*) from silver.candles where close > 0").fetchone()
    assert closes == (HOURS * len(SYMBOLS),)
    views = {
        f"{schema}.{name}"
        for schema, name in con.sql(
            "select schema_name, view_name from duckdb_views() where not internal"
        ).fetchall()
    }
    assert {"bronze.candles", "silver.candles", "gold.features"} <= views
    assert "gold.predictions" not in views  # not materialized: no view
    with pytest.raises(duckdb.CatalogException):
        con.sql("select * from gold.predictions")
    assert con.sql("select current_setting('TimeZone')").fetchone() == ("UTC",)


@pytest.mark.parametrize("reader", ["delta", "arrow"])
def test_time_travel_reads_an_older_version(lake: Lake, reader: str) -> None:
    con = open_catalog(lake, reader=reader)
    old = table_as_of(con, "gold.features", version=0)
    assert old.aggregate("count(*)").fetchone() == (FIRST_HOURS * len(SYMBOLS),)
    pinned = open_catalog(lake, reader=reader, versions={"gold.features": 0})
    assert pinned.sql("select count(*) from gold.features").fetchone() == (
        FIRST_HOURS * len(SYMBOLS),
    )
    # the pin moves only the pinned view
    assert pinned.sql("select count(*) from silver.candles").fetchone() == (HOURS * len(SYMBOLS),)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        # a version past the latest one names the versions that exist
        (lambda c, lake: table_as_of(c, "gold.features", version=9), LakeError, r"0\.\.1"),
        # a table nobody materialized yet
        (lambda c, lake: table_as_of(c, "gold.predictions", version=0), LakeError, "not exist"),
        # a name outside the catalog
        (lambda c, lake: table_as_of(c, "gold.nope", version=0), ConfigError, "gold.nope"),
        # pinning a version that does not exist fails when the catalog opens
        (lambda c, lake: open_catalog(lake, versions={"gold.features": 5}), LakeError, r"0\.\.1"),
        # pinning an unknown table
        (lambda c, lake: open_catalog(lake, versions={"gold.nope": 0}), ConfigError, "gold.nope"),
        # a connection the catalog did not open
        (
            lambda c, lake: table_as_of(duckdb.connect(), "gold.features", version=0),
            ConfigError,
            "open_catalog",
        ),
    ],
)
def test_time_travel_errors_say_what_exists(lake: Lake, call, error, message) -> None:  # type: ignore[no-untyped-def]
    con = open_catalog(lake)
    with pytest.raises(error, match=message):
        call(con, lake)


def test_history_lists_versions_newest_first(lake: Lake) -> None:
    history = table_history(lake, "gold.features")
    assert [entry["version"] for entry in history] == [1, 0]
    assert history[0]["timestamp"].tzinfo is not None
    with pytest.raises(LakeError, match=r"gold\.predictions"):
        table_history(lake, "gold.predictions")


def test_an_empty_lake_opens_with_no_views(tmp_path: Path) -> None:
    con = open_catalog(Lake(str(tmp_path / "lake")))
    assert not any(table.exists for table in catalog_tables(con))
    assert con.sql(
        "select count(*) from duckdb_schemas() where schema_name = 'gold'"
    ).fetchone() == (1,)
