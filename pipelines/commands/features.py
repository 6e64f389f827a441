"""`marketlake features`: the gold features of one OHLCV file, through the lake's own code path.

The file goes through the same steps as a landed topic: silver candles (deduplicated, resampled
to 1h, gaps flagged) and then ``build_gold_features``; the result is written as Parquet.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import polars as pl

from warehouse.errors import DataError
from warehouse.settings import Settings


def file_features(path: Path, *, symbol: str | None = None) -> pl.DataFrame:
    """Gold features and targets of an OHLCV file (any layout ``read_candle_file`` reads).

    Args:
        path: the OHLCV file.
        symbol: the pair; required when the file has no symbol column, else a filter. Default
            None (use the file's column).

    Returns:
        One row per (symbol, hour): ``symbol, ts``, the features, then the targets.

    Raises:
        SourceError: the file cannot be read (see ``read_candle_file``).
        DataError: the file holds no bars of 1h or finer.
    """
    from pipelines.sources.candle_files import read_candle_file
    from warehouse.features import build_gold_features
    from warehouse.silver import SERVING_INTERVAL, build_silver_candles

    bronze_like = read_candle_file(path, symbol=symbol).with_columns(
        pl.col("open_time").cast(pl.Datetime("ms", "UTC"))
    )
    silver = build_silver_candles(bronze_like)
    if silver.is_empty():
        intervals = sorted(bronze_like["interval"].unique().to_list())
        raise DataError(
            f"{path}: no candles of {SERVING_INTERVAL} or finer to compute features from "
            f"(file intervals: {', '.join(intervals) or 'none'})"
        )
    return build_gold_features(silver)


def cmd_features(args: argparse.Namespace, settings: Settings) -> int:
    out = Path(args.out)
    features = file_features(Path(args.file), symbol=args.symbol)
    out.parent.mkdir(parents=True, exist_ok=True)
    features.write_parquet(out)
    symbols: list[str] = sorted(features["symbol"].unique().to_list())
    summary: dict[str, Any] = {
        "rows": features.height,
        "columns": features.width,
        "symbols": symbols,
        "first_ts": features["ts"].min(),
        "last_ts": features["ts"].max(),
        "out": str(out),
    }
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(
            f"wrote {summary['rows']} rows x {summary['columns']} columns "
            f"({', '.join(symbols)}, {summary['first_ts']} .. {summary['last_ts']}) "
            f"to {out}"
        )
    return 0


def register(sub: Any) -> None:
    """Add ``marketlake features`` to the parser."""
    help_text = "compute the gold features of one OHLCV file (Parquet out)"
    command = sub.add_parser("features", help=help_text, description=help_text)
    command.add_argument("--file", required=True, help="OHLCV CSV or Binance klines JSON")
    command.add_argument("--symbol", help="the pair, e.g. BTCUSDT (needed without a symbol column)")
    command.add_argument("--out", required=True, help="the Parquet file to write")
    command.add_argument("--json", action="store_true", help="print a JSON summary")
    command.set_defaults(handler=cmd_features)
