"""Data-quality checks on lake tables: pure functions from a frame to a :class:`CheckOutcome`.

The Dagster asset checks (``assets/silver.py``, ``assets/gold.py``) read a table and call these;
a notebook or a test can call them on any frame. Each outcome says whether the check passed and
carries figures (counts, examples) for the check's metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from warehouse.errors import SchemaError

FRESHNESS_MAX_AGE = timedelta(hours=3)
"""Default: the newest row of a table may be at most this old (hourly candles land hourly)."""

SENTIMENT_MIN_COVERAGE = 0.99
"""Default: the share of silver posts that must carry a sentiment score."""

EXAMPLES = 3
"""Offending rows shown in a failed check's metadata."""


@dataclass(frozen=True)
class CheckOutcome:
    """The result of one check: passed or not, what was checked, and its figures."""

    name: str
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def _require(frame: pl.DataFrame, columns: Sequence[str], check: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SchemaError(f"check {check} needs column(s) {missing}; the table has {frame.columns}")


def _examples(frame: pl.DataFrame, columns: Sequence[str]) -> list[str]:
    return [str(row) for row in frame.select(columns).head(EXAMPLES).rows()]


def duplicate_keys(frame: pl.DataFrame, keys: Sequence[str]) -> CheckOutcome:
    """Passes when no two rows share the same ``keys``."""
    _require(frame, keys, "duplicate_keys")
    dupes = frame.group_by(list(keys)).len().filter(pl.col("len") > 1)
    extra = int(dupes["len"].sum() - dupes.height) if dupes.height else 0
    return CheckOutcome(
        "no_duplicate_keys",
        extra == 0,
        f"{extra} duplicate rows on ({', '.join(keys)}) in {frame.height} rows",
        {"rows": frame.height, "duplicate_rows": extra, "examples": _examples(dupes, keys)},
    )


def null_keys(frame: pl.DataFrame, keys: Sequence[str]) -> CheckOutcome:
    """Passes when no key column holds a null."""
    _require(frame, keys, "null_keys")
    counts = {k: int(frame[k].null_count()) for k in keys}
    total = sum(counts.values())
    return CheckOutcome(
        "no_null_keys",
        total == 0,
        f"{total} null key values in {frame.height} rows",
        {"rows": frame.height, "nulls_per_key": counts},
    )


def ohlc_sanity(frame: pl.DataFrame) -> CheckOutcome:
    """Passes when ``0 < low <= open, close <= high`` and ``volume >= 0`` on every row."""
    columns = ["symbol", "ts", "open", "high", "low", "close", "volume"]
    _require(frame, columns, "ohlc_sanity")
    bad = frame.filter(
        ~(
            (pl.col("low") > 0)
            & (pl.col("low") <= pl.min_horizontal("open", "close"))
            & (pl.col("high") >= pl.max_horizontal("open", "close"))
            & (pl.col("volume") >= 0)
        ).fill_null(False)
    )
    return CheckOutcome(
        "ohlc_sanity",
        bad.height == 0,
        f"{bad.height} of {frame.height} bars break 0 < low <= open, close <= high, volume >= 0",
        {"rows": frame.height, "bad_rows": bad.height, "examples": _examples(bad, columns)},
    )


def gap_report(candles: pl.DataFrame) -> CheckOutcome:
    """Report the gaps silver flagged, per symbol (always passes: gaps are facts, not errors).

    Needs ``symbol``, ``gap_before`` and ``missing_bars_before``; ``complete`` is used if present.
    """
    _require(candles, ["symbol", "gap_before", "missing_bars_before"], "gap_report")
    aggregates = [
        pl.len().alias("bars"),
        pl.col("gap_before").sum().alias("gaps"),
        pl.col("missing_bars_before").sum().alias("missing_bars"),
        pl.col("missing_bars_before").max().alias("largest_gap_bars"),
    ]
    if "complete" in candles.columns:
        aggregates.append((~pl.col("complete")).sum().alias("incomplete_bars"))
    per_symbol = candles.group_by("symbol").agg(aggregates).sort("symbol")
    table = {row.pop("symbol"): row for row in per_symbol.to_dicts()}
    gaps = int(per_symbol["gaps"].sum()) if per_symbol.height else 0
    missing = int(per_symbol["missing_bars"].sum()) if per_symbol.height else 0
    return CheckOutcome(
        "gap_report",
        True,
        f"{gaps} gaps, {missing} missing bars over {per_symbol.height} symbols",
        {"gaps": gaps, "missing_bars": missing, "per_symbol": table},
    )


def freshness(
    latest: datetime | None,
    *,
    now: datetime | None = None,
    max_age: timedelta = FRESHNESS_MAX_AGE,
) -> CheckOutcome:
    """Passes when the newest event time ``latest`` is at most ``max_age`` before ``now``.

    Args:
        latest: the newest ``ts`` of the table; None (an empty table) fails.
        now: the reference time; ``None`` means the wall clock (UTC).
        max_age: the allowed age; default :data:`FRESHNESS_MAX_AGE`.
    """
    reference = now or datetime.now(UTC)
    if latest is None:
        return CheckOutcome("freshness", False, "the table holds no rows", {"latest": ""})
    moment = latest if latest.tzinfo else latest.replace(tzinfo=UTC)
    age = reference - moment
    return CheckOutcome(
        "freshness",
        age <= max_age,
        f"newest row at {moment.isoformat()} is {age} old (allowed {max_age})",
        {
            "latest": moment.isoformat(),
            "age_hours": round(age.total_seconds() / 3600, 3),
            "max_age_hours": max_age.total_seconds() / 3600,
        },
    )


def sentiment_coverage(
    posts: pl.DataFrame, *, min_share: float = SENTIMENT_MIN_COVERAGE
) -> CheckOutcome:
    """Passes when at least ``min_share`` of posts carry a score and the model that made it.

    Also reports the share of posts naming a symbol and the posts per model and label.
    An empty table passes (nothing to score).
    """
    _require(posts, ["score", "sentiment_model", "symbols"], "sentiment_coverage")
    n = posts.height
    scored = posts.filter(pl.col("score").is_not_null() & pl.col("sentiment_model").is_not_null())
    share = scored.height / n if n else 1.0
    with_symbol = posts.filter(pl.col("symbols").list.len() > 0).height
    models = scored.group_by("sentiment_model").len().rows()
    labels = scored.group_by("label").len().rows() if "label" in posts.columns else []
    return CheckOutcome(
        "sentiment_coverage",
        share >= min_share,
        f"{scored.height} of {n} posts scored ({share:.1%}; required {min_share:.0%})",
        {
            "posts": n,
            "scored": scored.height,
            "scored_share": round(share, 4),
            "symbol_share": round(with_symbol / n, 4) if n else 0.0,
            "models": {str(m): int(c) for m, c in models},
            "labels": {str(label): int(c) for label, c in labels},
        },
    )
