"""Rebuild the derived tables from the layer below, idempotently (same input, same table).

Every refresh reads its sources at one Delta version each and records those versions in the
commit it writes (custom metadata ``marketlake.source`` / ``marketlake.sources``). A source table
that does not exist yet (a topic never produced) is not an error: the refresh returns a
:class:`SkippedRefresh` that says which table is missing.

Gold is incremental: it stores the versions of the silver tables it was built from, and a refresh
diffs each silver table against that version to find the earliest hour whose inputs changed. It
recomputes the rows from that hour minus the longest target horizon (targets look ahead) to the
end, from ``LOOKBACK_HOURS`` of history (:func:`build_gold_features_for_range`), and replaces
exactly those rows with a predicate overwrite. Gold is partitioned by ``month``, so a new hour
rewrites only the current month's files. A missing or unreadable old version, a schema change or
``full=True`` rebuilds everything.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from warehouse.catalog import (
    BRONZE_CANDLES,
    BRONZE_FEAR_GREED,
    BRONZE_POSTS,
    BRONZE_TICKERS,
    GOLD_FEATURES,
    SILVER_CANDLES,
    SILVER_FEAR_GREED,
    SILVER_POSTS,
    SILVER_TICKERS,
    SILVER_TICKERS_LATEST,
)
from warehouse.errors import DataError, LakeError
from warehouse.features import HORIZONS, build_gold_features, build_gold_features_for_range
from warehouse.lake import (
    Lake,
    append_exactly_once,
    open_table,
    overwrite,
    read_table,
    transaction_versions,
)
from warehouse.silver import build_silver_candles
from warehouse.silver_text import (
    SCORE_BATCH,
    PostScorer,
    build_silver_fear_greed,
    build_silver_tickers,
    latest_tickers,
    new_posts,
    score_posts,
)

GOLD_PARTITION = "month"
"""Gold partition column: ``YYYY-MM`` of ``ts`` (a new hour rewrites one month's files)."""

SOURCES_KEY = "marketlake.sources"
"""Commit metadata key holding ``{source table: version}`` as JSON."""


@dataclass(frozen=True)
class RefreshReport:
    """What a refresh wrote: rows, the new table version and the version it was built from."""

    table: str
    rows: int
    version: int
    source_table: str
    source_version: int
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "rows": self.rows,
            "version": self.version,
            "source_table": self.source_table,
            "source_version": self.source_version,
            **self.details,
        }


@dataclass(frozen=True)
class SkippedRefresh:
    """A refresh that wrote nothing because its source table does not exist yet."""

    table: str
    missing_source: str

    @property
    def reason(self) -> str:
        return f"{self.missing_source} does not exist yet (its topic was never landed): skipped"

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "rows": 0, "skipped": self.reason}


def _read_with_version(
    lake: Lake, table: str, *, columns: Sequence[str] | None = None
) -> tuple[pl.DataFrame, int] | None:
    delta = open_table(lake.location(table))
    if delta is None:
        return None
    version = delta.version()
    return read_table(lake.location(table), version=version, columns=columns), version


def _source_metadata(table: str, version: int) -> dict[str, str]:
    return {"marketlake.source": f"{table}@{version}"}


# --- silver ------------------------------------------------------------------------------------


def refresh_silver_candles(lake: Lake) -> RefreshReport | SkippedRefresh:
    """Bronze candles to silver: deduplicated, resampled to 1h, sorted, gaps flagged."""
    source = _read_with_version(lake, BRONZE_CANDLES)
    if source is None:
        return SkippedRefresh(SILVER_CANDLES, BRONZE_CANDLES)
    bronze, version = source
    silver = build_silver_candles(bronze)
    new_version = overwrite(
        lake.location(SILVER_CANDLES), silver, metadata=_source_metadata(BRONZE_CANDLES, version)
    )
    return RefreshReport(
        table=SILVER_CANDLES,
        rows=silver.height,
        version=new_version,
        source_table=BRONZE_CANDLES,
        source_version=version,
        details={
            "duplicates_removed": bronze.height - int(silver["bars"].sum() or 0),
            "gaps": int(silver["gap_before"].sum() or 0),
            "symbols": silver["symbol"].n_unique(),
        },
    )


def refresh_silver_posts(
    lake: Lake,
    model: PostScorer,
    *,
    batch_size: int = SCORE_BATCH,
    on_batch: Callable[[int], None] | None = None,
) -> RefreshReport | SkippedRefresh:
    """Bronze posts to silver: deduplicated on ``post_id``, symbols normalised, scored.

    Only posts not yet in ``silver/posts`` are scored and appended; rows already there are kept.
    The append commits, as an app transaction, the bronze version it covers, and fails with
    ``CommitConflictError`` (nothing written) if another refresh committed in between.

    Args:
        lake: the lake.
        model: the sentiment model (e.g. ``training.sentiment.load_sentiment_model("auto")``).
        batch_size: posts per ``model.score`` call; default :data:`SCORE_BATCH`.
        on_batch: progress callback, called with the size of each scored batch; default None.

    Returns:
        The report (``rows`` = posts in silver, ``scored`` = posts scored by this run), or a
        :class:`SkippedRefresh` when ``bronze/posts`` does not exist.
    """
    source = _read_with_version(lake, BRONZE_POSTS)
    if source is None:
        return SkippedRefresh(SILVER_POSTS, BRONZE_POSTS)
    bronze, version = source
    location = lake.location(SILVER_POSTS)
    app = f"{SILVER_POSTS}<-{BRONZE_POSTS}"
    stored = transaction_versions(location, [app])[app]
    existing = _read_with_version(lake, SILVER_POSTS, columns=["post_id"])
    existing_ids = None if existing is None else existing[0]["post_id"]
    fresh = new_posts(bronze, existing_ids)
    scored = score_posts(fresh, model, batch_size=batch_size, on_batch=on_batch)
    new_version = append_exactly_once(
        location,
        scored.to_arrow(),
        transactions={app: version},
        expected={app: stored},
        metadata=_source_metadata(BRONZE_POSTS, version),
    )
    kept = 0 if existing_ids is None else existing_ids.len()
    labels = scored["label"].value_counts().rows() if scored.height else []
    return RefreshReport(
        table=SILVER_POSTS,
        rows=kept + scored.height,
        version=new_version,
        source_table=BRONZE_POSTS,
        source_version=version,
        details={
            "scored": scored.height,
            "kept": kept,
            "bronze_rows": bronze.height,
            "sentiment_model": model.name,
            "labels": {str(label): int(n) for label, n in labels},
        },
    )


def refresh_silver_tickers(lake: Lake) -> RefreshReport | SkippedRefresh:
    """Bronze tickers to ``silver/tickers`` (history) and ``silver/tickers_latest``."""
    source = _read_with_version(lake, BRONZE_TICKERS)
    if source is None:
        return SkippedRefresh(SILVER_TICKERS, BRONZE_TICKERS)
    bronze, version = source
    history = build_silver_tickers(bronze)
    latest = latest_tickers(history)
    metadata = _source_metadata(BRONZE_TICKERS, version)
    new_version = overwrite(lake.location(SILVER_TICKERS), history, metadata=metadata)
    latest_version = overwrite(lake.location(SILVER_TICKERS_LATEST), latest, metadata=metadata)
    return RefreshReport(
        table=SILVER_TICKERS,
        rows=history.height,
        version=new_version,
        source_table=BRONZE_TICKERS,
        source_version=version,
        details={
            "duplicates_removed": bronze.height - history.height,
            "symbols": latest.height,
            "latest_table": SILVER_TICKERS_LATEST,
            "latest_version": latest_version,
        },
    )


def refresh_silver_fear_greed(lake: Lake) -> RefreshReport | SkippedRefresh:
    """Bronze Fear & Greed to silver: one value per UTC day (the first published that day)."""
    source = _read_with_version(lake, BRONZE_FEAR_GREED)
    if source is None:
        return SkippedRefresh(SILVER_FEAR_GREED, BRONZE_FEAR_GREED)
    bronze, version = source
    silver = build_silver_fear_greed(bronze)
    new_version = overwrite(
        lake.location(SILVER_FEAR_GREED),
        silver,
        metadata=_source_metadata(BRONZE_FEAR_GREED, version),
    )
    return RefreshReport(
        table=SILVER_FEAR_GREED,
        rows=silver.height,
        version=new_version,
        source_table=BRONZE_FEAR_GREED,
        source_version=version,
        details={"duplicates_removed": bronze.height - silver.height},
    )


# --- gold --------------------------------------------------------------------------------------

CANDLE_INPUT = ["symbol", "ts", "open", "high", "low", "close", "volume"]
POST_INPUT = ["post_id", "ts", "symbols", "score"]
FEAR_GREED_INPUT = ["ts", "value"]
_GOLD_INPUTS: dict[str, list[str]] = {
    SILVER_CANDLES: CANDLE_INPUT,
    SILVER_POSTS: POST_INPUT,
    SILVER_FEAR_GREED: FEAR_GREED_INPUT,
}


def _stored_sources(lake: Lake) -> dict[str, int | None] | None:
    """The source versions gold was last built from, or None (no gold, or unknown)."""
    table = open_table(lake.location(GOLD_FEATURES))
    if table is None or table.metadata().partition_columns != [GOLD_PARTITION]:
        return None
    for commit in table.history(20):
        if SOURCES_KEY in commit:
            return json.loads(commit[SOURCES_KEY])
    return None


def _changed_since(lake: Lake, table: str, old: int | None, new: int | None) -> datetime | None:
    """The earliest ``ts`` of a row added, removed or changed between two versions (None: none).

    Raises:
        LakeError: the old version cannot be read (vacuumed), so the caller rebuilds.
    """
    if old == new:
        return None
    columns = _GOLD_INPUTS[table]
    location = lake.location(table)
    if old is None or new is None:  # the table appeared or disappeared: all of its rows
        version = new if old is None else old
        return read_table(location, version=version, columns=["ts"])["ts"].min()  # type: ignore[return-value]
    before = read_table(location, version=old, columns=columns)
    after = read_table(location, version=new, columns=columns)
    keys = [c for c in columns if c != "symbols"]
    added = after.join(before, on=keys, how="anti", nulls_equal=True)
    removed = before.join(after, on=keys, how="anti", nulls_equal=True)
    return pl.concat([added["ts"], removed["ts"]]).min()  # type: ignore[return-value]


def _with_partition(gold: pl.DataFrame) -> pl.DataFrame:
    return gold.with_columns(pl.col("ts").dt.strftime("%Y-%m").alias(GOLD_PARTITION))


def refresh_gold_features(lake: Lake, *, full: bool = False) -> RefreshReport | SkippedRefresh:
    """Silver to gold features and targets, one row per (symbol, hour), recomputing what changed.

    Args:
        lake: the lake.
        full: rebuild every row instead of only the hours whose inputs changed; default False.

    Returns:
        The report: ``rows`` = rows written by this run, ``total_rows``, ``mode`` (``full``,
        ``incremental`` or ``unchanged``), ``recomputed_from`` and the silver versions; or a
        :class:`SkippedRefresh` when ``silver/candles`` does not exist.
    """
    current: dict[str, int | None] = {}
    for table in _GOLD_INPUTS:
        delta = open_table(lake.location(table))
        current[table] = None if delta is None else delta.version()
    if current[SILVER_CANDLES] is None:
        return SkippedRefresh(GOLD_FEATURES, SILVER_CANDLES)
    stored = None if full else _stored_sources(lake)
    start: datetime | None = None
    mode = "full"
    if stored is not None:
        try:
            changes = [_changed_since(lake, t, stored.get(t), current[t]) for t in _GOLD_INPUTS]
        except (LakeError, pl.exceptions.PolarsError):
            changes = None  # an old version is gone or unreadable: rebuild
        if changes is not None:
            moments = [c for c in changes if c is not None]
            if not moments:
                return _gold_report(lake, current, mode="unchanged", rows=0, start=None)
            earliest = min(moments).replace(minute=0, second=0, microsecond=0)
            start = earliest - timedelta(hours=max(HORIZONS) + 1)
            mode = "incremental"
    inputs = {t: _read_input(lake, t, v) for t, v in current.items()}
    candles, posts, fear_greed = (inputs[t] for t in _GOLD_INPUTS)
    assert candles is not None
    metadata = {
        "marketlake.source": f"{SILVER_CANDLES}@{current[SILVER_CANDLES]}",
        SOURCES_KEY: json.dumps(current),
    }
    location = lake.location(GOLD_FEATURES)
    if start is None:
        gold = _with_partition(build_gold_features(candles, sentiment=posts, fear_greed=fear_greed))
        overwrite(location, gold, partition_by=[GOLD_PARTITION], metadata=metadata)
    else:
        last: datetime | None = candles["ts"].max() if candles.height else None  # type: ignore[assignment]
        # end after the last candle; at least one hour, so rows removed from silver are deleted
        end = max(start, last or start) + timedelta(hours=1)
        gold = _with_partition(
            build_gold_features_for_range(
                candles, start, end, sentiment=posts, fear_greed=fear_greed
            )
        )
        overwrite(location, gold, predicate=f"ts >= '{start.isoformat()}'", metadata=metadata)
    return _gold_report(lake, current, mode=mode, rows=gold.height, start=start)


def _read_input(lake: Lake, table: str, version: int | None) -> pl.DataFrame | None:
    if version is None:
        return None
    frame = read_table(lake.location(table), version=version, columns=_GOLD_INPUTS[table])
    if table == SILVER_CANDLES:
        return frame.sort("symbol", "ts")
    if table == SILVER_POSTS:
        return frame.drop("post_id")
    return frame


def _gold_report(
    lake: Lake,
    sources: dict[str, int | None],
    *,
    mode: str,
    rows: int,
    start: datetime | None,
) -> RefreshReport:
    table = open_table(lake.location(GOLD_FEATURES))
    if table is None:
        raise DataError(f"{GOLD_FEATURES} was not written")
    total = read_table(lake.location(GOLD_FEATURES), columns=["symbol"])
    return RefreshReport(
        table=GOLD_FEATURES,
        rows=rows,
        version=table.version(),
        source_table=SILVER_CANDLES,
        source_version=int(sources[SILVER_CANDLES] or 0),
        details={
            "mode": mode,
            "total_rows": total.height,
            "symbols": total["symbol"].n_unique(),
            "recomputed_from": "" if start is None else start.isoformat(),
            "source_versions": {t: (-1 if v is None else v) for t, v in sources.items()},
        },
    )
