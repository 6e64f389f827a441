"""The newest row per layer: read from the Delta log's file statistics, the same value a scan
gives, on tables written by :mod:`warehouse.lake`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from serving.system_status import newest_row, newest_value
from warehouse.lake import Lake, append, overwrite, read_table

T0 = datetime(2024, 3, 1, tzinfo=UTC)
TABLE = "bronze/things"


def _rows(*offsets_us: int | None, unit: str = "us") -> pl.DataFrame:
    """One row per offset from T0 (microseconds; None: a null time)."""
    times = [None if o is None else T0 + timedelta(microseconds=o) for o in offsets_us]
    return pl.DataFrame(
        {"id": list(range(len(times))), "ts": times},
        schema={"id": pl.Int64, "ts": pl.Datetime(unit, "UTC")},  # type: ignore[arg-type]
    )


def _scan_max(lake: Lake) -> object:
    return read_table(lake.location(TABLE))["ts"].max()


@pytest.mark.parametrize(
    ("commits", "unit", "indexed_columns"),
    [
        # sub-millisecond times: the statistics are truncated, the value read is exact
        ([(5, 1_500_999), (2_000_001, 7), (40,)], "us", None),
        # millisecond times, as bronze stores the open time
        ([(1_000,), (3_000, 2_000), (1_000_000,)], "ms", None),
        # the newest row is in the first file, not the last one appended
        ([(9_999_999_999,), (1,), (2,), (3,)], "us", None),
        # a file holding only nulls in the column has no max: it is skipped, not scanned
        ([(100, 250), (None, None), (200,)], "us", None),
        # no statistics kept for any column: the table is scanned
        ([(5, 1_500_999), (2_000_001, 7)], "us", "0"),
    ],
)
def test_the_newest_row_is_the_maximum_a_scan_finds(
    tmp_path: Path,
    commits: list[tuple[int | None, ...]],
    unit: str,
    indexed_columns: str | None,
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    location = lake.location(TABLE)
    first, *rest = commits
    configuration = None if indexed_columns is None else {"delta.dataSkippingNumIndexedCols": "0"}
    write_deltalake(location.uri, _rows(*first, unit=unit).to_arrow(), configuration=configuration)
    for offsets in rest:
        append(location, _rows(*offsets, unit=unit))
    status = newest_row(lake, TABLE, "ts")
    assert status.newest == _scan_max(lake)
    assert status.newest is not None and status.newest.tzinfo is not None
    assert (status.layer, status.version) == ("bronze", len(commits) - 1)


def test_files_that_cannot_hold_the_newest_row_are_never_opened(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    location = lake.location(TABLE)
    for offsets in [(1, 2), (3_000_000_123,), (5, 6)]:
        append(location, _rows(*offsets))
    expected = _scan_max(lake)
    delta = DeltaTable(location.uri)
    files = pl.from_arrow(pa.table(delta.get_add_actions(flatten=True)))
    assert isinstance(files, pl.DataFrame)
    newest_file = files.sort("max.ts").row(-1, named=True)["path"]
    for path in Path(location.uri).glob("*.parquet"):
        if path.name != newest_file:
            path.unlink()  # a scan would fail now: only the newest file can be read
    assert newest_value(delta, "ts") == expected


def test_a_partitioned_table_and_a_missing_column(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    frame = _rows(1, 2_000_000_555, 3).with_columns(symbol=pl.Series(["A", "B", "A"]))
    overwrite(lake.location(TABLE), frame, partition_by=["symbol"])
    assert newest_row(lake, TABLE, "ts").newest == _scan_max(lake)
    assert newest_row(lake, TABLE, "no_such_column").newest is None


@pytest.mark.parametrize(
    "offsets",
    [
        (),  # no rows
        (None, None),  # only nulls
    ],
)
def test_no_newest_row(tmp_path: Path, offsets: tuple[int | None, ...]) -> None:
    lake = Lake(str(tmp_path / "lake"))
    overwrite(lake.location(TABLE), _rows(*offsets))
    status = newest_row(lake, TABLE, "ts")
    assert (status.newest, status.version) == (None, 0)


def test_no_table(tmp_path: Path) -> None:
    status = newest_row(Lake(str(tmp_path / "lake")), TABLE, "ts")
    assert (status.newest, status.version) == (None, None)
