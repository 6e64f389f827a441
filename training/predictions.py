"""Batch predictions into ``gold/predictions`` and their live accuracy once outcomes are known.

The same scoring serves the predictions the HTTP service answered (``gold/served_predictions``,
see :func:`served_live_accuracy`), after dropping repeats of the same question.

A prediction row is one (symbol, ts, horizon) of one model version: ``ts`` is the hour of the last
feature row the model used (the prediction is for the move from that candle's close to the close
``horizon_hours`` later), so it joins the gold targets of the same ``(symbol, ts)``.

Writes are idempotent: a batch replaces exactly the rows of its model name and version within its
``[first ts, last ts]`` range (one Delta commit with a predicate), so re-running a batch, or a
later batch that overlaps it, never duplicates a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from training.dataset import datetime_bounds
from training.metrics import wilson_interval
from training.predictor import PricePredictor
from warehouse.errors import DataError
from warehouse.lake import TableLocation, open_table, overwrite

PREDICTION_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "ts": pl.Datetime("us", "UTC"),
    "horizon_hours": pl.Int32(),
    "predicted_return": pl.Float64(),
    "direction_probability": pl.Float64(),
    "model_name": pl.String(),
    "model_version": pl.Int64(),
    "predicted_at": pl.Datetime("us", "UTC"),
}
CHUNK_HOURS = 4000
"""Hours predicted at once: bounds the memory of the materialised windows."""


def prediction_rows(
    wide: pl.DataFrame,
    horizons: list[int],
    *,
    model_name: str,
    model_version: int,
    predicted_at: datetime,
) -> pl.DataFrame:
    """:meth:`PricePredictor.predict_all` output (one row per hour) to one row per horizon."""
    frames = [
        wide.select(
            "symbol",
            "ts",
            pl.lit(h, dtype=pl.Int32).alias("horizon_hours"),
            pl.col(f"predicted_return_{h}h").cast(pl.Float64).alias("predicted_return"),
            pl.col(f"direction_probability_{h}h").cast(pl.Float64).alias("direction_probability"),
        )
        for h in horizons
    ]
    rows = pl.concat(frames) if frames else pl.DataFrame(schema=PREDICTION_SCHEMA)
    return (
        rows.with_columns(
            pl.lit(model_name).alias("model_name"),
            pl.lit(model_version, dtype=pl.Int64).alias("model_version"),
            pl.lit(predicted_at).cast(pl.Datetime("us", "UTC")).alias("predicted_at"),
        )
        .with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
        .select(list(PREDICTION_SCHEMA))
        .sort("symbol", "ts", "horizon_hours")
    )


def batch_predictions(
    predictor: PricePredictor,
    gold: pl.DataFrame,
    *,
    model_name: str,
    model_version: int,
    since: datetime | None = None,
    predicted_at: datetime | None = None,
) -> pl.DataFrame:
    """Predict every hour of ``gold`` from ``since`` on that has a full window.

    Args:
        predictor: the model.
        gold: gold feature rows (targets are not needed).
        model_name: stored with every row.
        model_version: stored with every row.
        since: the first hour to predict; ``None`` (default) means the start of ``gold``.
        predicted_at: stored with every row; ``None`` (default) means now (UTC).

    Returns:
        Rows of :data:`PREDICTION_SCHEMA`; empty when no hour qualifies.
    """
    stamp = predicted_at or datetime.now(UTC)
    if gold.is_empty():
        return pl.DataFrame(schema=PREDICTION_SCHEMA)
    gold = gold.sort("symbol", "ts")
    first, last = datetime_bounds(gold["ts"])
    history = timedelta(hours=predictor.bundle.sequence_length - 1)
    parts = []
    start = since or first
    while start <= last:
        end = start + timedelta(hours=CHUNK_HOURS)
        context = gold.filter(pl.col("ts").is_between(start - history, end, closed="left"))
        try:
            wide = predictor.predict_all(context).filter(pl.col("ts") >= start)
        except DataError:
            wide = None  # no window ends in this chunk
        if wide is not None and not wide.is_empty():
            parts.append(
                prediction_rows(
                    wide,
                    predictor.horizons,
                    model_name=model_name,
                    model_version=model_version,
                    predicted_at=stamp,
                )
            )
        start = end
    if not parts:
        return pl.DataFrame(schema=PREDICTION_SCHEMA)
    return pl.concat(parts)


def store_predictions(location: TableLocation, rows: pl.DataFrame) -> int | None:
    """Write ``rows`` (one model version), replacing that version's rows in their time range.

    Returns:
        The new table version, or ``None`` when ``rows`` is empty (nothing written).

    Raises:
        DataError: when ``rows`` holds more than one model name or version.
    """
    if rows.is_empty():
        return None
    keys = rows.select("model_name", "model_version").unique()
    if keys.height != 1:
        raise DataError(f"a prediction batch holds one model version, got {keys.rows()}")
    name, version = keys.row(0)
    rows = rows.select(list(PREDICTION_SCHEMA))
    if open_table(location) is None:
        return overwrite(location, rows, partition_by=["model_name"])
    low, high = datetime_bounds(rows["ts"])
    predicate = (
        f"model_name = '{_sql_text(name)}' AND model_version = {int(version)} "
        f"AND ts >= '{_iso(low)}' AND ts <= '{_iso(high)}'"
    )
    return overwrite(
        location,
        rows,
        predicate=predicate,
        metadata={"model": f"{name}/{version}", "range": f"{_iso(low)}..{_iso(high)}"},
    )


SERVED_KEY = ("model_name", "model_version", "symbol", "ts", "horizon_hours")
"""A served prediction is the same prediction when these match (many clients ask the same)."""


@dataclass(frozen=True)
class LiveAccuracy:
    """Realised directional accuracy of stored predictions, per model version and horizon.

    Attributes:
        table: one row per ``(model_name, model_version, horizon_hours)``; see
            :func:`live_accuracy`.
        rows: prediction rows read (before de-duplication); default 0.
        duplicates_dropped: rows dropped as repeats of the same prediction; default 0.
    """

    table: pl.DataFrame
    rows: int = 0
    duplicates_dropped: int = 0

    def to_records(self) -> list[dict[str, Any]]:
        return [
            {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
            for row in self.table.iter_rows(named=True)
        ]

    def markdown(self) -> str:
        """A Markdown table, one line per model version and horizon: scored and pending
        predictions, directional accuracy with its 95 % Wilson interval, and the MAE of the
        predicted return (``-`` where nothing is scored yet)."""
        lines = [
            "| model | horizon | n | pending | directional accuracy | 95% CI | MAE |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in self.table.iter_rows(named=True):
            scored = row["n"] > 0
            accuracy = f"{row['directional_accuracy']:.3f}" if scored else "-"
            interval = f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]" if scored else "-"
            mae = f"{row['mae']:.5f}" if scored else "-"
            lines.append(
                f"| {row['model_name']} v{row['model_version']} | {row['horizon_hours']}h "
                f"| {row['n']} | {row['pending']} | {accuracy} | {interval} | {mae} |"
            )
        if self.table.is_empty():
            lines.append("| - | - | 0 | 0 | - | - | - |")
        return "\n".join(lines)


def live_accuracy(predictions: pl.DataFrame, gold: pl.DataFrame) -> LiveAccuracy:
    """Join predictions with the realised targets and score them.

    A prediction counts once its target is known (the gold ``target_return_{h}h`` of the same
    symbol and hour is not null); it is right when ``direction_probability > 0.5`` matches a
    realised return ``> 0``.

    Args:
        predictions: rows with ``symbol``, ``ts``, ``horizon_hours``, ``predicted_return``,
            ``direction_probability``, ``model_name`` and ``model_version`` (the batch
            :data:`PREDICTION_SCHEMA` or the served one).
        gold: gold feature rows with ``target_return_{h}h`` columns.

    Returns:
        One row per ``(model_name, model_version, horizon_hours)``: ``n``, ``pending`` (targets
        not realised yet), ``directional_accuracy``, ``ci_low``/``ci_high`` (95 % Wilson),
        ``mae`` (mean absolute error of ``predicted_return``; the three are null when ``n`` is
        0), ``up_rate`` and the first and last scored ``ts``.
    """
    horizons = sorted(predictions["horizon_hours"].unique().to_list())
    targets = pl.concat(
        [
            gold.select(
                "symbol",
                pl.col("ts").cast(pl.Datetime("us", "UTC")),
                pl.lit(h, dtype=pl.Int32).alias("horizon_hours"),
                pl.col(f"target_return_{h}h").cast(pl.Float64).alias("realised_return"),
            )
            for h in horizons
            if f"target_return_{h}h" in gold.columns
        ]
        or [
            pl.DataFrame(
                schema={
                    "symbol": pl.String,
                    "ts": pl.Datetime("us", "UTC"),
                    "horizon_hours": pl.Int32,
                    "realised_return": pl.Float64,
                }
            )
        ]
    )
    keyed = predictions.with_columns(
        pl.col("ts").cast(pl.Datetime("us", "UTC")), pl.col("horizon_hours").cast(pl.Int32)
    )
    joined = keyed.join(targets, on=["symbol", "ts", "horizon_hours"], how="left")
    realised = pl.col("realised_return").is_not_null()
    grouped = (
        joined.with_columns(
            ((pl.col("direction_probability") > 0.5) == (pl.col("realised_return") > 0)).alias(
                "hit"
            )
        )
        .group_by("model_name", "model_version", "horizon_hours")
        .agg(
            realised.sum().cast(pl.Int64).alias("n"),
            pl.col("realised_return").is_null().sum().cast(pl.Int64).alias("pending"),
            pl.col("hit").filter(realised).sum().cast(pl.Int64).alias("hits"),
            (pl.col("predicted_return") - pl.col("realised_return"))
            .abs()
            .filter(realised)
            .mean()
            .alias("mae"),
            (pl.col("realised_return") > 0).mean().alias("up_rate"),
            pl.col("ts").filter(realised).min().alias("first_ts"),
            pl.col("ts").filter(realised).max().alias("last_ts"),
        )
        .sort("model_name", "model_version", "horizon_hours")
    )
    intervals = [
        wilson_interval(int(hits), int(n)) if n else (None, None)
        for hits, n in zip(grouped["hits"], grouped["n"], strict=True)
    ]
    table = grouped.with_columns(
        pl.when(pl.col("n") > 0)
        .then(pl.col("hits") / pl.col("n"))
        .otherwise(None)
        .alias("directional_accuracy"),
        pl.Series("ci_low", [i[0] for i in intervals], dtype=pl.Float64),
        pl.Series("ci_high", [i[1] for i in intervals], dtype=pl.Float64),
    ).select(
        "model_name",
        "model_version",
        "horizon_hours",
        "n",
        "pending",
        "directional_accuracy",
        "ci_low",
        "ci_high",
        "mae",
        "up_rate",
        "first_ts",
        "last_ts",
    )
    return LiveAccuracy(table, rows=predictions.height)


def distinct_served(served: pl.DataFrame) -> pl.DataFrame:
    """One row per :data:`SERVED_KEY`: the first one served (by ``served_at`` when present).

    The same model version answers the same ``(symbol, ts, horizon)`` for every client that
    asks, so counting each answer would weight a prediction by its popularity.
    """
    ordered = served.sort("served_at", nulls_last=True) if "served_at" in served.columns else served
    return ordered.unique(subset=list(SERVED_KEY), keep="first", maintain_order=True)


def served_live_accuracy(served: pl.DataFrame, gold: pl.DataFrame) -> LiveAccuracy:
    """:func:`live_accuracy` of the served predictions (``gold/served_predictions`` rows),
    each distinct prediction (:func:`distinct_served`) counted once.

    Returns:
        The scores, with ``rows`` (served rows read) and ``duplicates_dropped`` set.
    """
    distinct = distinct_served(served)
    scored = live_accuracy(distinct, gold)
    return LiveAccuracy(
        scored.table, rows=served.height, duplicates_dropped=served.height - distinct.height
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _sql_text(value: str) -> str:
    return value.replace("'", "''")
