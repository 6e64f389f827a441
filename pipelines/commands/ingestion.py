"""`marketlake produce`, `backfill` and `ingest`: data into Kafka and Kafka into bronze."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.command_line import add_command, print_json
from warehouse.errors import ConfigError
from warehouse.settings import Settings

if TYPE_CHECKING:
    from pipelines.offset_moves import OffsetReset, ResetTo

PRODUCE_KINDS = ("candles", "tickers", "posts", "fear-greed")


def _stop_on_signals() -> threading.Event:
    """An event set by SIGTERM/SIGINT, so follow loops end cleanly between batches."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def cmd_produce(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.produce import (
        KINDS,
        produce_file,
        produce_live,
        produce_simulated_candles,
    )

    if args.simulate:
        if args.kind != "candles":
            raise ConfigError("--simulate produces candles only")
        symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
        sent = produce_simulated_candles(settings, symbols, hours=args.hours, seed=args.seed)
    elif args.live:
        stop = _stop_on_signals() if args.follow else None
        sent = produce_live(settings, args.kind, follow=args.follow, every_s=args.every, stop=stop)
    elif args.file:
        sent = produce_file(
            settings, args.kind, Path(args.file), symbol=args.symbol, speed=args.speed
        )
    else:
        raise ConfigError("give --file F, --live or --simulate (see `marketlake produce --help`)")
    print(f"produced {sent} messages to {KINDS[args.kind]}")
    return 0


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.produce import backfill, parse_since

    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    if not symbols:
        raise ConfigError("--symbols needs at least one symbol, e.g. BTCUSDT,ETHUSDT")
    sent = backfill(
        settings, args.source, symbols, since_ms=parse_since(args.since), interval=args.interval
    )
    print(f"produced {sent} candles from {args.source} to market.candles")
    return 0


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.produce import ingest_topic, ingest_topics
    from warehouse.topics import CANDLES, TOPICS

    topics = list(TOPICS) if args.all else [args.topic or CANDLES]
    reset: dict[str, Any] | None = None
    if args.reset_offsets:
        if args.topic is None:
            raise ConfigError(
                "--reset-offsets moves the stored offsets of one topic: name it with --topic T"
            )
        moved = reset_topic_offsets(settings, args.topic, to=args.reset_offsets)
        reset = {
            "to": moved.to,
            "before": {str(p): o for p, o in sorted(moved.before.items())},
            "after": {str(p): o for p, o in sorted(moved.after.items())},
            "table_version": moved.table_version,
        }
        if not args.json:
            print(moved.describe())
    if args.follow or len(topics) > 1:
        stop = _stop_on_signals() if args.follow else None
        reports = ingest_topics(settings, topics, follow=args.follow, stop=stop)
    else:
        reports = [ingest_topic(settings, topics[0], max_records=args.max_records)]
    if args.json:
        result: Any = [r.to_dict() for r in reports] if args.all else reports[0].to_dict()
        if reset is not None:
            result["reset_offsets"] = reset
        print_json(result)
        return 0
    for report in reports:
        print(
            f"{report.topic}: landed {report.rows} rows, {report.rejects} rejects in "
            f"{report.batches} batches ({report.seconds:.1f} s); "
            f"table version {report.table_version}; offsets {report.end_offsets}"
            + (f"; {report.extra_fields} with unknown fields" if report.extra_fields else "")
        )
    return 0


def reset_topic_offsets(settings: Settings, topic: str, *, to: ResetTo) -> OffsetReset:
    """Move the stored offsets of ``topic`` to its log's beginning or end (see
    :func:`pipelines.offset_moves.reset_offsets`), on the broker of ``settings``."""
    from pipelines.broker import resolve_broker
    from pipelines.offset_moves import reset_offsets
    from warehouse.catalog import BRONZE_REJECTS
    from warehouse.lake import Lake
    from warehouse.topics import topic_spec

    spec = topic_spec(topic)
    lake = Lake(settings.lake_uri, settings.storage_options)
    endpoint = resolve_broker(settings)
    return reset_offsets(
        endpoint.bootstrap,
        spec,
        bronze=lake.location(spec.table),
        rejects=lake.location(BRONZE_REJECTS),
        to=to,
        log_id=endpoint.log_id,
    )


def register(sub: Any) -> None:
    """Add this module's subcommands to the ``marketlake`` parser."""
    produce = add_command(
        sub, "produce", cmd_produce, "send market data, posts or the index into Kafka"
    )
    produce.add_argument("kind", choices=PRODUCE_KINDS)
    produce.add_argument(
        "--file",
        help="candles: OHLCV CSV (three layouts) or Binance kline JSON; tickers: a saved "
        "CoinGecko /coins/markets JSON; posts: tweet/news/headline CSV; fear-greed: JSON or CSV",
    )
    produce.add_argument("--symbol", help="symbol of a candle file without a symbol column")
    produce.add_argument("--speed", type=float, default=None, help="replay at X x market speed")
    produce.add_argument("--live", action="store_true", help="tickers/fear-greed from the API")
    produce.add_argument("--follow", action="store_true", help="with --live: keep polling")
    produce.add_argument("--every", type=float, default=60.0, help="--follow period, s (60)")
    produce.add_argument("--simulate", action="store_true", help="generate GARCH-t candles")
    produce.add_argument(
        "--symbols", default="BTCUSDT,ETHUSDT,SOLUSDT", help="--simulate: comma-separated pairs"
    )
    produce.add_argument("--hours", type=int, default=24 * 90, help="--simulate: bars per symbol")
    produce.add_argument("--seed", type=int, default=7, help="--simulate: random seed (7)")

    backfill = add_command(
        sub, "backfill", cmd_backfill, "page candle history from an API into Kafka"
    )
    backfill.add_argument("--source", choices=["binance", "coingecko"], required=True)
    backfill.add_argument("--symbols", required=True, help="pairs, e.g. BTCUSDT,ETHUSDT")
    backfill.add_argument("--since", required=True, help="first day, YYYY-MM-DD (UTC)")
    backfill.add_argument("--interval", default="1h", help="candle interval (1h)")

    ingest = add_command(
        sub, "ingest", cmd_ingest, "land what Kafka holds into bronze, exactly once"
    )
    which = ingest.add_mutually_exclusive_group()
    which.add_argument("--topic", default=None, help="one topic (default market.candles)")
    which.add_argument("--all", action="store_true", help="every topic")
    ingest.add_argument("--follow", action="store_true", help="keep landing as records arrive")
    ingest.add_argument("--max-records", type=int, default=None)
    ingest.add_argument(
        "--reset-offsets",
        choices=["earliest", "latest"],
        default=None,
        help="first move the stored offsets of --topic to the log's beginning (land everything "
        "it holds) or its end (land only what arrives next); needed when the log lost them",
    )
    ingest.add_argument("--json", action="store_true")
