"""`marketlake produce` and `marketlake ingest`: data into Kafka and Kafka into bronze."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from warehouse.errors import MarketlakeError
from warehouse.settings import Settings


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def cmd_produce(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.produce import produce_candle_file, produce_simulated_candles

    if args.kind != "candles":
        raise MarketlakeError(f"producing {args.kind} is not available yet; use `candles`")
    if args.simulate:
        symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
        sent = produce_simulated_candles(settings, symbols, hours=args.hours, seed=args.seed)
    elif args.file:
        sent = produce_candle_file(settings, Path(args.file), symbol=args.symbol)
    else:
        raise MarketlakeError("give --file F or --simulate (see `marketlake produce --help`)")
    print(f"produced {sent} messages to market.candles")
    return 0


# -- ingest -------------------------------------------------------------------------------------


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.produce import ingest_topic

    report = ingest_topic(settings, args.topic, max_records=args.max_records)
    if args.json:
        _print_json(report.to_dict())
    else:
        print(
            f"{report.topic}: landed {report.rows} rows, {report.rejects} rejects in "
            f"{report.batches} batches ({report.seconds:.1f} s); "
            f"table version {report.table_version}; offsets {report.end_offsets}"
        )
    return 0


def _add(sub: Any, name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
    command = sub.add_parser(name, help=help_text, description=help_text)
    command.set_defaults(handler=handler)
    return command


def register(sub: Any) -> None:
    """Add this module's subcommands to the ``marketlake`` parser."""
    produce = _add(sub, "produce", cmd_produce, "send market data into Kafka")
    produce.add_argument("kind", choices=["candles"])
    produce.add_argument("--file", help="an OHLCV CSV (three layouts) or Binance kline JSON")
    produce.add_argument("--symbol", help="symbol of a file without a symbol column")
    produce.add_argument("--simulate", action="store_true", help="generate GARCH-t candles")
    produce.add_argument("--symbols", default="BTCUSDT,ETHUSDT,SOLUSDT")
    produce.add_argument("--hours", type=int, default=24 * 90)
    produce.add_argument("--seed", type=int, default=7)

    ingest = _add(sub, "ingest", cmd_ingest, "land what Kafka holds into bronze, exactly once")
    ingest.add_argument("--topic", default="market.candles")
    ingest.add_argument("--max-records", type=int, default=None)
    ingest.add_argument("--json", action="store_true")
