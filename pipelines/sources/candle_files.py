"""OHLCV files -> a typed candle DataFrame -> ``market.candles`` messages.

Layouts, detected from the header (names are matched case-insensitively):

=================  ===================================================  ======================
layout             header                                               symbol from
=================  ===================================================  ======================
``open_time``      ``open_time,open,high,low,close,volume``             ``symbol=`` argument
``datetime``       ``datetime,open,high,low,close,volume``              ``symbol=`` argument
``long``           ``date,open,high,low,close,volume,ticker``           the ``ticker`` column
``binance_klines`` a ``.json`` file holding a raw ``/api/v3/klines``    ``symbol=`` argument
                   array, or a header-less CSV of kline rows (Binance
                   data dumps)
=================  ===================================================  ======================

Extra columns are ignored; ``timestamp``/``time`` also name the time column and ``symbol`` the
symbol column. The time column may hold text (``2020-10-07 18:00:00``, ISO 8601 with or without an
offset; no offset = UTC) or epoch numbers in s/ms/us/ns (unit read from the size, see
:mod:`pipelines.sources.event_time`). In the three real files it is text.

The interval is the median spacing of consecutive open times per symbol (so gaps do not move it),
which must be one of :data:`warehouse.topics.INTERVALS_MS`; pass ``interval=`` to override.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.sources.binance import parse_kline
from pipelines.sources.event_time import epoch_unit_factor
from warehouse.errors import SourceError
from warehouse.topics import INTERVALS_MS, Record

CANDLE_COLUMNS: tuple[str, ...] = (
    "symbol",
    "interval",
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "source",
)
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
TIME_COLUMNS: tuple[str, ...] = ("open_time", "datetime", "date", "timestamp", "time")
SYMBOL_COLUMNS: tuple[str, ...] = ("ticker", "symbol")
_INTERVAL_BY_MS = {ms: name for name, ms in INTERVALS_MS.items()}


@dataclass(frozen=True)
class CandleLayout:
    """Where a file keeps its open time and (optionally) its symbol."""

    name: str
    time_column: str
    symbol_column: str | None


def detect_layout(columns: list[str], *, path: Path | str = "<file>") -> CandleLayout:
    """Pick the layout of a CSV header (see the module docstring).

    Raises:
        SourceError: no layout fits; the message lists the columns found and expected.
    """
    names = [c.strip().lower() for c in columns]
    missing = [c for c in PRICE_COLUMNS if c not in names]
    times = [c for c in TIME_COLUMNS if c in names]
    symbols = [c for c in SYMBOL_COLUMNS if c in names]
    if missing or len(times) != 1 or len(symbols) > 1:
        raise SourceError(
            f"{path}: unknown OHLCV layout, columns {columns}; expected one time column of "
            f"{list(TIME_COLUMNS)}, all of {list(PRICE_COLUMNS)} and optionally one of "
            f"{list(SYMBOL_COLUMNS)} (missing: {missing or 'none'}, time columns: {times})"
        )
    name = "long" if symbols else times[0]
    return CandleLayout(name, times[0], symbols[0] if symbols else None)


def read_candle_file(
    path: Path | str, *, symbol: str | None = None, interval: str | None = None
) -> pl.DataFrame:
    """Read an OHLCV file in any supported layout into a typed, sorted candle frame.

    Args:
        path: A CSV file or a ``.json`` raw Binance klines array.
        symbol: The pair, e.g. ``"BTCUSDT"``. Required when the file has no symbol column;
            with a symbol column it keeps only that symbol's rows. ``None``: use the column.
        interval: The candle interval, e.g. ``"1h"``. ``None``: inferred per symbol from the
            median spacing of open times.

    Returns:
        Columns :data:`CANDLE_COLUMNS` (``open_time`` Int64 ms UTC, prices Float64), sorted by
        symbol and open time; ``source`` is ``"file:<name>"``.

    Raises:
        SourceError: unknown layout, unreadable values, no symbol, or no inferable interval.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"OHLCV file {path} does not exist")
    if interval is not None and interval not in INTERVALS_MS:
        raise SourceError(f"unknown interval {interval!r}; expected one of {list(INTERVALS_MS)}")
    if path.suffix.lower() == ".json":
        frame = _read_kline_json(path)
    elif _first_field_is_number(path):
        frame = _read_kline_csv(path)
    else:
        frame = _read_layout_csv(path)
    frame = _with_symbol(frame, path, symbol)
    frame = frame.sort("symbol", "open_time")
    frame = _with_interval(frame, path, interval)
    return frame.with_columns(pl.lit(f"file:{path.name}").alias("source")).select(CANDLE_COLUMNS)


def iter_candle_messages(frame: pl.DataFrame) -> Iterator[Record]:
    """Yield one ``market.candles`` message (a plain dict) per row of a candle frame."""
    yield from frame.select(CANDLE_COLUMNS).iter_rows(named=True)


def _first_field_is_number(path: Path) -> bool:
    with path.open(encoding="utf-8-sig") as handle:
        first = handle.readline().split(",")[0].strip().strip('"')
    return first.replace(".", "", 1).isdigit()


def _read_layout_csv(path: Path) -> pl.DataFrame:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        header = next(csv.reader(handle), [])
    layout = detect_layout(header, path=path)
    try:
        raw = pl.read_csv(path, infer_schema=False, encoding="utf8-lossy")
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise SourceError(f"{path}: not a readable CSV ({exc})") from None
    raw = raw.rename({c: c.strip().lower() for c in raw.columns})
    columns = {"open_time": _time_to_ms(raw[layout.time_column], path, layout.time_column)}
    for name in PRICE_COLUMNS:
        columns[name] = _to_float(raw[name], path, name)
    if layout.symbol_column is not None:
        columns["symbol"] = raw[layout.symbol_column].str.strip_chars().str.to_uppercase()
    return pl.DataFrame(columns)


def _read_kline_json(path: Path) -> pl.DataFrame:
    try:
        payload: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SourceError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(payload, list):
        raise SourceError(
            f"{path}: expected a raw Binance klines array [[open_time, open, high, low, close, "
            f"volume, close_time, ...], ...], got a JSON {type(payload).__name__}"
        )
    return _kline_frame([parse_kline(row, i) for i, row in enumerate(payload)], path)


def _read_kline_csv(path: Path) -> pl.DataFrame:
    try:
        raw = pl.read_csv(path, has_header=False, infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise SourceError(f"{path}: not a readable CSV ({exc})") from None
    if raw.width < 7:
        raise SourceError(
            f"{path}: a header-less file must hold Binance kline rows (at least 7 columns), "
            f"found {raw.width} columns"
        )
    return _kline_frame([parse_kline(list(row), i) for i, row in enumerate(raw.iter_rows())], path)


def _kline_frame(klines: list[tuple[Any, ...]], path: Path) -> pl.DataFrame:
    if not klines:
        raise SourceError(f"{path}: holds no klines")
    names = ["open_time", *PRICE_COLUMNS]
    frame = pl.DataFrame(
        [list(column) for column in zip(*(k[:6] for k in klines), strict=True)],
        schema={n: pl.Int64 if n == "open_time" else pl.Float64 for n in names},
        orient="col",
    )
    # Binance's data dumps switched to microseconds in 2025: read the unit from the size
    factor = epoch_unit_factor(float(frame["open_time"].median()))  # type: ignore[arg-type]
    return frame.with_columns((pl.col("open_time") * factor).round().cast(pl.Int64))


def _time_to_ms(column: pl.Series, path: Path, name: str) -> pl.Series:
    text = column.str.strip_chars()
    _require_no_nulls(text, path, name)
    if text.str.contains(r"^\d+(\.\d+)?$").all():
        numbers = text.cast(pl.Float64)
        factor = epoch_unit_factor(float(numbers.median()))  # type: ignore[arg-type]
        return (numbers * factor).round().cast(pl.Int64).alias("open_time")
    try:
        moments = text.str.to_datetime(time_unit="ms", strict=True)
    except pl.exceptions.PolarsError as exc:
        raise SourceError(
            f"{path}: column '{name}' is neither epoch numbers nor one date/time format "
            f"(first value {text[0]!r}): {str(exc).splitlines()[0]}"
        ) from None
    zone = getattr(moments.dtype, "time_zone", None)
    moments = (
        moments.dt.replace_time_zone("UTC") if zone is None else moments.dt.convert_time_zone("UTC")
    )
    return moments.dt.epoch("ms").alias("open_time")


def _to_float(column: pl.Series, path: Path, name: str) -> pl.Series:
    _require_no_nulls(column, path, name)
    values = column.str.strip_chars().cast(pl.Float64, strict=False)
    bad = values.is_null()
    if bad.any():
        row = int(bad.arg_true()[0])
        raise SourceError(
            f"{path}: column '{name}' has a non-numeric value {column[row]!r} at data row {row + 1}"
        )
    return values


def _require_no_nulls(column: pl.Series, path: Path, name: str) -> None:
    if column.null_count():
        row = int(column.is_null().arg_true()[0])
        raise SourceError(f"{path}: column '{name}' is empty at data row {row + 1}")


def _with_symbol(frame: pl.DataFrame, path: Path, symbol: str | None) -> pl.DataFrame:
    if "symbol" not in frame.columns:
        if symbol is None or not symbol.strip():
            raise SourceError(
                f"{path}: the file has no ticker/symbol column; pass the symbol (--symbol BTCUSDT)"
            )
        return frame.with_columns(pl.lit(symbol.strip().upper()).alias("symbol"))
    if symbol is None:
        return frame
    wanted = symbol.strip().upper()
    kept = frame.filter(pl.col("symbol") == wanted)
    if kept.is_empty():
        found = sorted(frame["symbol"].unique().to_list())
        raise SourceError(f"{path}: no rows for symbol {wanted}; the file holds {found}")
    return kept


def _with_interval(frame: pl.DataFrame, path: Path, interval: str | None) -> pl.DataFrame:
    if interval is not None:
        return frame.with_columns(pl.lit(interval).alias("interval"))
    spacing = (
        frame.with_columns(pl.col("open_time").diff().over("symbol").alias("step"))
        .filter(pl.col("step") > 0)
        .group_by("symbol")
        .agg(pl.col("step").median().alias("median_ms"))
    )
    names: dict[str, str] = {}
    for symbol in frame["symbol"].unique().sort().to_list():
        median = spacing.filter(pl.col("symbol") == symbol)["median_ms"]
        if median.is_empty():
            raise SourceError(
                f"{path}: {symbol} has fewer than two distinct open times, so its interval "
                "cannot be inferred; pass the interval (e.g. --interval 1h)"
            )
        name = _INTERVAL_BY_MS.get(round(float(median[0])))
        if name is None:
            raise SourceError(
                f"{path}: {symbol} rows are a median {float(median[0]):.0f} ms apart, which is "
                f"none of the intervals {dict(INTERVALS_MS)}; pass the interval explicitly"
            )
        names[symbol] = name
    return frame.with_columns(
        pl.col("symbol").replace_strict(names, return_dtype=pl.String).alias("interval")
    )
