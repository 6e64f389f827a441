"""Rebuild the derived tables from the layer below, idempotently (same input, same table)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from warehouse.catalog import BRONZE_CANDLES, GOLD_FEATURES, SILVER_CANDLES
from warehouse.errors import DataError
from warehouse.features import build_gold_features
from warehouse.lake import Lake, open_table, overwrite, read_table
from warehouse.silver import build_silver_candles


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


def _read_with_version(lake: Lake, table: str) -> tuple[pl.DataFrame, int]:
    delta = open_table(lake.location(table))
    if delta is None:
        raise DataError(f"table {table} does not exist yet: run the step that builds it first")
    version = delta.version()
    return read_table(lake.location(table), version=version), version


def refresh_silver_candles(lake: Lake) -> RefreshReport:
    """Bronze candles to silver: deduplicated, resampled to 1h, sorted, gaps flagged."""
    bronze, version = _read_with_version(lake, BRONZE_CANDLES)
    silver = build_silver_candles(bronze)
    new_version = overwrite(
        lake.location(SILVER_CANDLES),
        silver,
        metadata={"marketlake.source": f"{BRONZE_CANDLES}@{version}"},
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


def refresh_gold_features(lake: Lake) -> RefreshReport:
    """Silver candles to gold features and targets, one row per (symbol, hour)."""
    silver, version = _read_with_version(lake, SILVER_CANDLES)
    gold = build_gold_features(
        silver.select("symbol", "ts", "open", "high", "low", "close", "volume")
    )
    new_version = overwrite(
        lake.location(GOLD_FEATURES),
        gold,
        metadata={"marketlake.source": f"{SILVER_CANDLES}@{version}"},
    )
    return RefreshReport(
        table=GOLD_FEATURES,
        rows=gold.height,
        version=new_version,
        source_table=SILVER_CANDLES,
        source_version=version,
        details={"columns": gold.width, "symbols": gold["symbol"].n_unique()},
    )
