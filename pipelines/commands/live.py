"""`marketlake up`, `down`, `status`, `source` and `lander`: the live system."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path
from typing import Any

from pipelines.command_line import add_command, print_json
from warehouse.errors import ConfigError
from warehouse.settings import Settings

SOURCES = ("none", "simulate", "replay", "live")


def _symbols(text: str | None) -> tuple[str, ...] | None:
    if not text:
        return None
    symbols = tuple(s.strip().upper() for s in text.split(",") if s.strip())
    return symbols or None


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def _log_to_stderr(verbose: bool) -> None:
    """Long-running children of ``up`` log their INFO lines (their log file is the output)."""
    logging.getLogger("pipelines").setLevel(logging.DEBUG if verbose else logging.INFO)


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.up import UpOptions, run_up

    source = args.source[0]
    replay_file = None
    if source == "replay":
        if len(args.source) != 2:
            raise ConfigError("--source replay needs a file: --source replay FILE")
        replay_file = Path(args.source[1]).resolve()
    elif len(args.source) != 1:
        raise ConfigError(f"--source {source} takes no file")
    options = UpOptions(
        source=source,
        replay_file=replay_file,
        speed=args.speed,
        api_port=args.api_port,
        dagster_port=args.dagster_port,
        mlflow_port=args.mlflow_port if args.mlflow else None,
        symbols=_symbols(args.symbols),
    )
    return run_up(settings, options)


def cmd_down(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.down import run_down

    stopped = run_down(settings)
    if not stopped:
        print(f"nothing to stop: no `marketlake up` recorded in {settings.home}")
        return 0
    print("stopped " + ", ".join(stopped))
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.live_status import format_status, gather_status

    status = gather_status(settings)
    if args.json:
        print_json(status)
    else:
        print("\n".join(format_status(status)))
    return 0


def cmd_source(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.live_sources import (
        SourceOptions,
        run_live_source,
        run_replay_source,
        run_simulated_source,
    )

    _log_to_stderr(args.verbose)
    options = SourceOptions(speed=args.speed, symbols=_symbols(args.symbols), every_s=args.every)
    stop = _stop_on_signals()
    if args.kind == "simulate":
        sent = run_simulated_source(settings, options, stop)
    elif args.kind == "replay":
        if not args.file:
            raise ConfigError("`marketlake source replay` needs --file F (an OHLCV file)")
        sent = run_replay_source(settings, Path(args.file), options, stop)
    else:
        sent = run_live_source(settings, options, stop)
    print(f"source {args.kind} sent {sent} messages")
    return 0


def cmd_lander(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.lander import dagster_reporter, run_lander
    from warehouse.topics import TOPICS

    _log_to_stderr(args.verbose)
    topics = [t.strip() for t in args.topics.split(",")] if args.topics else list(TOPICS)
    unknown = [t for t in topics if t not in TOPICS]
    if unknown:
        raise ConfigError(f"unknown topic(s) {', '.join(unknown)}; known: {', '.join(TOPICS)}")
    report = None if args.no_dagster else dagster_reporter(settings)
    landed = run_lander(settings, _stop_on_signals(), topics=topics, report=report)
    print("landed " + ", ".join(f"{t}: {n} rows" for t, n in landed.items()))
    return 0


def register(sub: Any) -> None:
    """Add this module's subcommands to the ``marketlake`` parser."""
    up = add_command(
        sub,
        "up",
        cmd_up,
        "start the live system: broker, lander, Dagster (automation on), the API, a source",
    )
    up.add_argument(
        "--source",
        nargs="+",
        default=["none"],
        metavar="KIND",
        help="none (default), simulate, replay FILE or live",
    )
    up.add_argument(
        "--speed", type=float, default=1.0, help="simulate/replay: market hours per hour (1)"
    )
    up.add_argument("--symbols", help="simulate/live: comma-separated pairs (default: the lake's)")
    up.add_argument("--api-port", type=int, default=3000, help="API and dashboard (3000; 0: free)")
    up.add_argument("--dagster-port", type=int, default=3001, help="Dagster UI (3001; 0: free)")
    up.add_argument("--mlflow", action="store_true", help="also start the MLflow UI")
    up.add_argument("--mlflow-port", type=int, default=5000, help="MLflow UI (5000; 0: free)")

    add_command(sub, "down", cmd_down, "stop everything `marketlake up` started")

    status = add_command(
        sub, "status", cmd_status, "what runs, lag per topic, freshness per layer, the champion"
    )
    status.add_argument("--json", action="store_true")

    source = add_command(
        sub, "source", cmd_source, "feed the live system: simulate, replay a file, or live APIs"
    )
    source.add_argument("kind", choices=[s for s in SOURCES if s != "none"])
    source.add_argument("--file", help="replay: an OHLCV file")
    source.add_argument("--speed", type=float, default=1.0, help="market hours per hour (1)")
    source.add_argument("--symbols", help="comma-separated pairs (default: the lake's)")
    source.add_argument("--every", type=float, default=60.0, help="live: poll period, s (60)")

    lander = add_command(
        sub, "lander", cmd_lander, "land every topic as records arrive, through broker restarts"
    )
    lander.add_argument("--topics", help="comma-separated topics (default: all)")
    lander.add_argument(
        "--no-dagster", action="store_true", help="do not report landed batches to Dagster"
    )
