"""``marketlake``: the command line for everything a person does by hand.

Each subcommand is a thin wrapper around a function of the domain packages; Dagster runs the
same functions on schedules and sensors.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from warehouse.errors import MarketlakeError
from warehouse.settings import Settings, apply_tool_homes, load_settings

log = logging.getLogger("marketlake")

REPO_ROOT = Path(__file__).resolve().parent.parent


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


# -- broker -------------------------------------------------------------------------------------


def cmd_broker(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.broker import broker_status, start_broker, stop_broker

    if args.action == "start":
        info = start_broker(settings.broker_dir)
        print(f"broker running at {info.bootstrap} (pid {info.pid})")
    elif args.action == "stop":
        stopped = stop_broker(settings.broker_dir)
        print("broker stopped" if stopped else "no broker was running")
    else:
        status = broker_status(settings.broker_dir)
        if status is None:
            print("no embedded broker is running")
            return 1
        print(f"broker running at {status.bootstrap} (pid {status.pid})")
    return 0


# -- produce ------------------------------------------------------------------------------------


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


# -- materialize --------------------------------------------------------------------------------


def cmd_materialize(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.materialize import materialize_assets

    result = materialize_assets(settings, selection=args.select, max_epochs=args.max_epochs)
    for line in result:
        print(line)
    return 0


# -- train / models -----------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from training.config import load_train_config
    from training.jobs import train_from_lake
    from warehouse.lake import Lake

    config = load_train_config(args.config, max_epochs=args.max_epochs)
    result = train_from_lake(
        Lake(settings.lake_uri, settings.storage_options),
        config,
        tracking_uri=settings.mlflow_tracking_uri,
        artifacts=settings.mlflow_artifacts,
        progress=not args.json,
    )
    if args.json:
        _print_json(result.to_dict())
        return 0
    print(
        f"registered {result.model_name} version {result.model_version} (run {result.run_id}); "
        f"{'promoted to champion' if result.promoted else 'not promoted'}; "
        f"champion is version {result.champion_version}"
    )
    print(f"validation directional accuracy (all horizons): {result.val_score:.4f}")
    print("test directional accuracy [95% CI] beside the baselines:")
    for horizon, by_model in result.test_metrics.items():
        cells = [
            f"{who} {m['directional_accuracy']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"
            for who, m in by_model.items()
            if who != "random_walk"
        ]
        print(f"  {horizon:>4}: " + " | ".join(cells))
    return 0


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    from mlflow.tracking import MlflowClient

    from training.config import MODEL_NAME
    from training.registry import configure_tracking, list_versions, promote, rollback

    configure_tracking(settings.mlflow_tracking_uri, settings.mlflow_artifacts)
    client = MlflowClient(settings.mlflow_tracking_uri)
    if args.action == "list":
        versions = list_versions(client, MODEL_NAME)
        if args.json:
            _print_json([v.__dict__ for v in versions])
            return 0
        if not versions:
            print(f"no versions of {MODEL_NAME} yet: run `marketlake train`")
        for v in versions:
            score = "n/a" if v.score is None else f"{v.score:.4f}"
            print(f"{MODEL_NAME} v{v.version:<4} val_acc={score:<8} {','.join(v.aliases)}")
    elif args.action == "promote":
        if args.version is None:
            raise MarketlakeError("give the version to promote: `marketlake models promote 3`")
        previous = promote(client, MODEL_NAME, args.version)
        print(f"champion is now version {args.version} (was {previous})")
    else:
        version = rollback(client, MODEL_NAME)
        print(f"rolled back: champion is now version {version}")
    return 0


# -- serve / ui ---------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    bentoml = Path(sys.executable).with_name("bentoml")
    command = [
        str(bentoml),
        "serve",
        "serving.service:MarketlakeService",
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--working-dir",
        str(REPO_ROOT),
    ]
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.execv(command[0], command)
    return 0  # pragma: no cover


def cmd_dagster(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.materialize import ensure_dagster_home

    ensure_dagster_home(settings)
    dagster = Path(sys.executable).with_name("dagster")
    command = [str(dagster), "dev", "-w", str(REPO_ROOT / "workspace.yaml"), "-p", str(args.port)]
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # dagster dev must see Ctrl-C (STACK.md)
    os.chdir(REPO_ROOT)
    os.execv(command[0], command)
    return 0  # pragma: no cover


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.demo import DemoOptions, run_demo

    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    return run_demo(
        settings,
        DemoOptions(
            symbols=symbols,
            hours=args.hours,
            file=args.file,
            max_epochs=args.max_epochs,
            seed=args.seed,
        ),
    )


# -- parser -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="marketlake", description="Crypto market-intelligence lakehouse."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, handler: Callable[..., int], help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(handler=handler)
        return command

    broker = add("broker", cmd_broker, "start, stop or show the embedded Kafka-compatible broker")
    broker.add_argument("action", choices=["start", "stop", "status"])

    produce = add("produce", cmd_produce, "send market data into Kafka")
    produce.add_argument("kind", choices=["candles"])
    produce.add_argument("--file", help="an OHLCV CSV (three layouts) or Binance kline JSON")
    produce.add_argument("--symbol", help="symbol of a file without a symbol column")
    produce.add_argument("--simulate", action="store_true", help="generate GARCH-t candles")
    produce.add_argument("--symbols", default="BTCUSDT,ETHUSDT,SOLUSDT")
    produce.add_argument("--hours", type=int, default=24 * 90)
    produce.add_argument("--seed", type=int, default=7)

    ingest = add("ingest", cmd_ingest, "land what Kafka holds into bronze, exactly once")
    ingest.add_argument("--topic", default="market.candles")
    ingest.add_argument("--max-records", type=int, default=None)
    ingest.add_argument("--json", action="store_true")

    materialize = add("materialize", cmd_materialize, "run the Dagster assets in-process")
    materialize.add_argument(
        "--select", default="*", help="asset selection, e.g. 'silver/candles+' (default: all)"
    )
    materialize.add_argument("--max-epochs", type=int, default=None)

    train = add("train", cmd_train, "train, evaluate and register the price model")
    train.add_argument("--config", help="YAML training config (see training/config.py)")
    train.add_argument("--max-epochs", type=int, default=None)
    train.add_argument("--json", action="store_true")

    models = add("models", cmd_models, "list, promote or roll back registered price models")
    models.add_argument("action", choices=["list", "promote", "rollback"])
    models.add_argument("version", nargs="?", type=int)
    models.add_argument("--json", action="store_true")

    serve = add("serve", cmd_serve, "serve predictions over HTTP with BentoML")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=3000)

    dagster = add("dagster", cmd_dagster, "open the Dagster UI on this project's instance")
    dagster.add_argument("--port", type=int, default=3001)

    demo = add("demo", cmd_demo, "the whole flow on embedded defaults, ending in a prediction")
    demo.add_argument("--symbols", default="BTCUSDT,ETHUSDT,SOLUSDT")
    demo.add_argument("--hours", type=int, default=24 * 120)
    demo.add_argument("--file", help="replay a real OHLCV file instead of simulating")
    demo.add_argument("--max-epochs", type=int, default=3)
    demo.add_argument("--seed", type=int, default=7)
    for module in _command_modules():
        module.register(sub)
    return parser


def _command_modules() -> list[Any]:
    import importlib
    import pkgutil

    from pipelines import commands

    return [
        importlib.import_module(f"pipelines.commands.{info.name}")
        for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name)
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = load_settings()
    apply_tool_homes(settings)
    try:
        return int(args.handler(args, settings))
    except MarketlakeError as exc:
        print(f"marketlake: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
