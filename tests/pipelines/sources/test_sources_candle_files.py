"""OHLCV files in every real layout -> candle frames -> valid ``market.candles`` messages."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from pipelines.sources.candle_files import (
    CANDLE_COLUMNS,
    detect_layout,
    iter_candle_messages,
    read_candle_file,
)
from warehouse.errors import SourceError
from warehouse.topics import validate_candle

BTC = "btcusdt_1h_spot_2020-10_2023-12.csv"
ETH = "ethusdt_1h_spot_2019-12_2023-12.csv"
LONG = "crypto_1h_spot_7symbols_2023-12-01_2023-12-29.csv"
KLINES = "api_samples/binance_api_v3_klines_btcusdt_1d_2023-12.json"
SEVEN = ["ADAUSDT", "BNBUSDT", "BTCUSDT", "DOGEUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]


@pytest.mark.parametrize(
    ("name", "symbol", "rows", "symbols", "interval", "first_open_ms"),
    [
        # open_time layout: open_time is a UTC date string "2020-10-07 18:00:00"
        (BTC, "BTCUSDT", 28_306, ["BTCUSDT"], "1h", 1_602_093_600_000),
        # datetime layout, symbol given in lower case
        (ETH, "ethusdt", 35_698, ["ETHUSDT"], "1h", 1_575_439_200_000),
        # long layout: the ticker column names the symbol, 696 hours each
        (LONG, None, 4_872, SEVEN, "1h", 1_701_388_800_000),
        # raw Binance klines JSON, daily
        (KLINES, "BTCUSDT", 31, ["BTCUSDT"], "1d", 1_701_388_800_000),
    ],
)
def test_real_files_read_and_validate(
    shared_data_dir, name, symbol, rows, symbols, interval, first_open_ms
) -> None:
    frame = read_candle_file(shared_data_dir / name, symbol=symbol)
    assert frame.columns == list(CANDLE_COLUMNS)
    assert frame.schema["open_time"] == pl.Int64
    assert all(frame.schema[c] == pl.Float64 for c in ("open", "high", "low", "close", "volume"))
    assert frame.height == rows
    assert sorted(frame["symbol"].unique().to_list()) == symbols
    assert frame["interval"].unique().to_list() == [interval]
    assert frame["open_time"].min() == first_open_ms
    assert frame["source"].unique().to_list() == [f"file:{Path(name).name}"]
    assert frame.select(pl.col("open_time").diff().over("symbol").min()).item() > 0  # sorted
    count = 0
    for message in iter_candle_messages(frame):
        validate_candle(message)
        count += 1
    assert count == rows


def test_long_file_filtered_by_symbol(shared_data_dir) -> None:
    frame = read_candle_file(shared_data_dir / LONG, symbol="solusdt")
    assert frame["symbol"].unique().to_list() == ["SOLUSDT"] and frame.height == 696


def test_long_file_with_an_absent_symbol_names_those_present(shared_data_dir) -> None:
    with pytest.raises(SourceError, match=r"no rows for symbol LTCUSDT.*DOGEUSDT"):
        read_candle_file(shared_data_dir / LONG, symbol="LTCUSDT")


@pytest.mark.parametrize("name", [BTC, KLINES])
def test_a_file_without_symbol_column_needs_the_symbol(shared_data_dir, name) -> None:
    with pytest.raises(SourceError, match="--symbol"):
        read_candle_file(shared_data_dir / name)


def test_epoch_milliseconds_in_open_time_read_the_same(shared_data_dir, tmp_path) -> None:
    text = read_candle_file(shared_data_dir / BTC, symbol="BTCUSDT").head(300)
    as_ms = tmp_path / "btc_ms.csv"
    text.select("open_time", "open", "high", "low", "close", "volume").write_csv(as_ms)
    epoch = read_candle_file(as_ms, symbol="BTCUSDT")
    assert epoch.drop("source").equals(text.drop("source"))


def test_headerless_binance_kline_csv_in_microseconds(shared_data_dir, tmp_path) -> None:
    klines = json.loads((shared_data_dir / KLINES).read_text())
    dump = tmp_path / "BTCUSDT-1d-2023-12.csv"  # a data.binance.vision dump since 2025: us
    dump.write_text(
        "\n".join(
            ",".join(str(v) for v in [k[0] * 1000, *k[1:6], k[6] * 1000, *k[7:]]) for k in klines
        )
    )
    frame = read_candle_file(dump, symbol="BTCUSDT")
    assert frame["open_time"].to_list() == [k[0] for k in klines]
    assert frame["interval"].unique().to_list() == ["1d"]
    assert frame["close"][0] == float(klines[0][4])


def test_gaps_do_not_change_the_inferred_interval(shared_data_dir, tmp_path) -> None:
    frame = read_candle_file(shared_data_dir / ETH, symbol="ETHUSDT").head(100)
    holes = frame.filter(~pl.int_range(pl.len()).is_in([10, 11, 12, 40, 41, 70]))
    path = tmp_path / "eth_with_gaps.csv"
    holes.select(
        pl.from_epoch("open_time", time_unit="ms")
        .dt.strftime("%Y-%m-%d %H:%M:%S")
        .alias("datetime"),
        "open",
        "high",
        "low",
        "close",
        "volume",
    ).write_csv(path)
    again = read_candle_file(path, symbol="ETHUSDT")
    assert again["interval"].unique().to_list() == ["1h"]
    assert again["open_time"].to_list() == holes["open_time"].to_list()


def test_an_explicit_interval_overrides_inference(shared_data_dir) -> None:
    frame = read_candle_file(shared_data_dir / KLINES, symbol="BTCUSDT", interval="4h")
    assert frame["interval"].unique().to_list() == ["4h"]


@pytest.mark.parametrize(
    ("header", "mentioned"),
    [
        ("time,price,amount", "['time', 'price', 'amount']"),  # a trades file, not OHLCV
        ("open_time,open,high,low,close", "missing: ['volume']"),  # no volume
        ("date,datetime,open,high,low,close,volume", "time columns: ['datetime', 'date']"),  # two
        ("open,high,low,close,volume", "time columns: []"),  # no time at all
    ],
)
def test_unknown_layouts_raise_naming_the_columns(tmp_path, header, mentioned) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(f"{header}\nx,1,2,3,4,5,6\n")
    with pytest.raises(SourceError) as info:
        read_candle_file(path, symbol="BTCUSDT")
    assert "unknown OHLCV layout" in str(info.value) and mentioned in str(info.value)


@pytest.mark.parametrize(
    ("columns", "layout", "time_column", "symbol_column"),
    [
        (["open_time", "open", "high", "low", "close", "volume"], "open_time", "open_time", None),
        (["datetime", "open", "high", "low", "close", "volume"], "datetime", "datetime", None),
        (["date", "open", "high", "low", "close", "volume", "ticker"], "long", "date", "ticker"),
        # upper case and padding are tolerated
        ([" Date", "Open", "High", "Low", "Close", "Volume", "Symbol"], "long", "date", "symbol"),
    ],
)
def test_layout_detection(columns, layout, time_column, symbol_column) -> None:
    found = detect_layout(columns)
    assert (found.name, found.time_column, found.symbol_column) == (
        layout,
        time_column,
        symbol_column,
    )


@pytest.mark.parametrize(
    ("body", "match"),
    [
        # a price that is not a number
        ("2023-12-01 00:00:00,1,2,oops,1.5,10\n", "column 'low' has a non-numeric value 'oops'"),
        # a time that is no date
        ("yesterday,1,2,0.5,1.5,10\n", "column 'datetime' is neither epoch numbers"),
        # an empty price
        ("2023-12-01 00:00:00,1,,0.5,1.5,10\n", "column 'high' is empty"),
    ],
)
def test_bad_values_raise_naming_the_column(tmp_path, body, match) -> None:
    path = tmp_path / "bad_values.csv"
    path.write_text(
        "datetime,open,high,low,close,volume\n2023-12-01 01:00:00,1,2,0.5,1.5,10\n" + body
    )
    with pytest.raises(SourceError, match=match):
        read_candle_file(path, symbol="BTCUSDT")


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        (["2023-12-01 00:00:00"], "fewer than two distinct open times"),  # one row only
        (
            ["2023-12-01 00:00:00", "2023-12-01 01:30:00", "2023-12-01 03:00:00"],
            "5400000 ms",
        ),  # 90m
    ],
)
def test_uninferable_intervals_raise(tmp_path, rows, match) -> None:
    path = tmp_path / "few.csv"
    path.write_text(
        "datetime,open,high,low,close,volume\n" + "".join(f"{r},1,2,0.5,1.5,10\n" for r in rows)
    )
    with pytest.raises(SourceError, match=match):
        read_candle_file(path, symbol="BTCUSDT")


def test_a_json_object_is_not_a_klines_file(tmp_path) -> None:
    path = tmp_path / "chart.json"
    path.write_text('{"prices": []}')
    with pytest.raises(SourceError, match="raw Binance klines array"):
        read_candle_file(path, symbol="BTCUSDT")


def test_a_missing_file_is_a_source_error(tmp_path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        read_candle_file(tmp_path / "nope.csv", symbol="BTCUSDT")
