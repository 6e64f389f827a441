"""Bulk decoding of a bronze batch: one NDJSON parse by Arrow, checks as Polars expressions.

The checks of each topic accept only what its per-record validator in :mod:`warehouse.topics`
accepts; they may refuse more (non-ASCII symbols, text without a visible ASCII character ...).
Every record they refuse, and every value that is not one JSON object on one line, is handed
back for the per-record validator to decide, so bulk and per-record decoding always agree.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.json as pa_json

from warehouse.topics import (
    INTERVALS_MS,
    MAX_FUTURE_MS,
    MAX_MESSAGE_BYTES,
    MAX_TEXT_CHARS,
    MIN_EVENT_MS,
    Record,
    TopicSpec,
    validate_candle,
    validate_fear_greed,
    validate_post,
    validate_ticker,
)

INDEX = "__marketlake_index"
"""Column that carries a row's position in its fetched batch while decoding."""

_VISIBLE = r"[!-~]"  # a visible ASCII character: stricter than "not blank" (str.strip)


def _visible(name: str) -> pl.Expr:
    return pl.col(name).str.contains(_VISIBLE)


def _positive(name: str) -> pl.Expr:
    return pl.col(name).is_finite() & (pl.col(name) > 0)


def _optional_finite(name: str) -> pl.Expr:
    return pl.col(name).is_null() | pl.col(name).is_finite()


def _optional_count(name: str) -> pl.Expr:
    return pl.col(name).is_null() | (pl.col(name) >= 0)


def _symbol(name: str) -> pl.Expr:
    column = pl.col(name)
    return column.str.contains(r"^[A-Za-z0-9_-]{1,32}$") & column.str.contains(r"[A-Za-z0-9]")


def _event(name: str, latest_ms: int) -> pl.Expr:
    return pl.col(name).is_between(MIN_EVENT_MS, latest_ms)


def _candle_checks(latest_ms: int) -> list[pl.Expr]:
    low, high = pl.col("low"), pl.col("high")
    return [
        _symbol("symbol"),
        pl.col("interval").is_in(list(INTERVALS_MS)),
        _event("open_time", latest_ms),
        *(_positive(name) for name in ("open", "high", "low", "close")),
        pl.col("volume").is_finite() & (pl.col("volume") >= 0),
        high >= low,
        pl.col("open").is_between(low, high),
        pl.col("close").is_between(low, high),
        _visible("source"),
    ]


def _ticker_checks(latest_ms: int) -> list[pl.Expr]:
    optional = ("market_cap", "volume_24h", "change_24h_pct")
    return [
        _symbol("symbol"),
        _positive("price"),
        *(_optional_finite(name) for name in optional),
        _event("ts", latest_ms),
        _visible("source"),
    ]


def _post_checks(latest_ms: int) -> list[pl.Expr]:
    printable = pl.element().str.contains(r"^[ -~]*$").fill_null(False)
    counts = ("likes", "reposts", "replies", "followers")
    return [
        *(_visible(name) for name in ("post_id", "platform", "text", "source")),
        pl.col("text").str.len_chars() <= MAX_TEXT_CHARS,
        _event("ts", latest_ms),
        pl.col("symbols").is_null() | pl.col("symbols").list.eval(printable).list.all(),
        *(_optional_count(name) for name in counts),
    ]


def _fear_greed_checks(latest_ms: int) -> list[pl.Expr]:
    return [
        pl.col("value").is_between(0, 100),
        _visible("classification"),
        _event("ts", latest_ms),
        _visible("source"),
    ]


_CHECKS: dict[Callable[[Mapping[str, Any]], Record], Callable[[int], list[pl.Expr]]] = {
    validate_candle: _candle_checks,
    validate_ticker: _ticker_checks,
    validate_post: _post_checks,
    validate_fear_greed: _fear_greed_checks,
}
"""Bulk checks per validator. Each accepts only what the validator accepts (it may refuse more:
the per-record validator then decides), so bulk and per-record decoding always agree."""

_OUTPUTS: dict[str, pl.Expr] = {
    "symbol": pl.col("symbol").str.to_uppercase(),
    "symbols": pl.when(pl.col("symbols").is_null())
    .then(pl.lit([], dtype=pl.List(pl.String)))
    .otherwise(pl.col("symbols").list.eval(pl.element().str.to_uppercase())),
}
"""Fields a validator normalises (the rest pass through unchanged)."""


@dataclass(frozen=True)
class BulkDecoded:
    """The records the bulk checks accepted, and those the per-record validator must decide."""

    rows: pl.DataFrame
    recheck: list[int]
    extra_fields: int


def parse_schema(spec: TopicSpec) -> pa.Schema:
    """The topic schema as Arrow parses JSON: event times stay integer milliseconds."""
    return pa.schema(
        [
            pa.field(f.name, pa.int64() if pa.types.is_timestamp(f.type) else f.type)
            for f in spec.schema
        ]
    )


def bulk_decode(spec: TopicSpec, values: list[bytes | None], *, now_ms: int) -> BulkDecoded | None:
    """Parse ``values`` as one NDJSON document and check them with Polars expressions.

    Only values that are one JSON object on one line (``{...}``, no newline, within the size
    limit) are parsed together; the others go to :attr:`BulkDecoded.recheck`.

    Returns:
        ``None`` when the topic has no bulk checks or Arrow cannot parse the batch (a mistyped
        field, invalid UTF-8 ...): decode it record by record then.
    """
    checks = _CHECKS.get(spec.validate)
    if checks is None or not values:
        return None
    raw = pl.Series(values, dtype=pl.Binary)
    eligible = (
        (raw.bin.size() <= MAX_MESSAGE_BYTES)
        & raw.bin.starts_with(b"{")
        & raw.bin.ends_with(b"}")
        & ~raw.bin.contains(b"\n")
        & ~raw.bin.contains(b"\r")
    ).fill_null(False)
    if eligible.all():
        positions = list(range(len(values)))
        joined = b"\n".join(values)  # type: ignore[arg-type]
    else:
        positions = eligible.arg_true().to_list()
        joined = b"\n".join([values[i] for i in positions])  # type: ignore[misc]
    ineligible = (~eligible).arg_true().to_list()
    if not positions:
        return BulkDecoded(pl.DataFrame(), ineligible, 0)
    try:
        table = pa_json.read_json(
            io.BytesIO(joined),
            read_options=pa_json.ReadOptions(block_size=4 * MAX_MESSAGE_BYTES),
            parse_options=pa_json.ParseOptions(
                explicit_schema=parse_schema(spec),
                unexpected_field_behavior="infer",
                newlines_in_values=False,
            ),
        )
    except (pa.ArrowException, UnicodeDecodeError, ValueError):
        return None
    if table.num_rows != len(positions):
        return None  # a value held more than one JSON object
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    names = spec.schema.names
    extras = [c for c in frame.columns if c not in names]
    latest = int(time.time() * 1000) + MAX_FUTURE_MS
    ok = pl.all_horizontal(checks(latest)).fill_null(False).alias("__ok")
    frame = frame.with_columns(pl.Series(INDEX, positions, dtype=pl.Int64), ok)
    good = frame.filter(pl.col("__ok"))
    extra = 0
    if extras:
        present = pl.any_horizontal([pl.col(c).is_not_null() for c in extras])
        extra = int(good.select(present.sum()).item())
    refused = frame.filter(~pl.col("__ok"))[INDEX].to_list()
    rows = good.select(*(_OUTPUTS.get(n, pl.col(n)).alias(n) for n in names), pl.col(INDEX))
    return BulkDecoded(rows, sorted(refused + ineligible), extra)
