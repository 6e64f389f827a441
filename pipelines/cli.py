"""``marketlake``: the command line for everything a person does by hand.

Each subcommand is a thin wrapper around a function of the domain packages; Dagster runs the
same functions on schedules and sensors.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipelines.command_line import add_command
from warehouse.errors import MarketlakeError
from warehouse.settings import Settings, apply_tool_homes, load_settings

log = logging.getLogger("marketlake")

REPO_ROOT = Path(__file__).resolve().parent.parent


# -- broker -------------------------------------------------------------------------------------


def cmd_broker(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.broker import broker_status, start_broker

    if args.action == "start":
        info = start_broker(settings.broker_dir)
        print(f"broker running at {info.bootstrap} (pid {info.pid}, log {info.log_id})")
    elif args.action == "stop":
        from pipelines.broker_stop import stop_embedded_broker

        result = stop_embedded_broker(settings, force=args.force)
        for topic, records in sorted(result.landed.items()):
            print(f"{topic}: landed {records} records before stopping")
        for topic, why in sorted(result.failures.items()):
            print(f"{topic}: landing failed: {why}")
        for topic, records in sorted(result.dropped.items()):
            print(f"{topic}: dropped {records} unlanded records (--force)")
        print("broker stopped" if result.stopped else "no broker was running")
    else:
        status = broker_status(settings.broker_dir)
        if status is None:
            print("no embedded broker is running")
            return 1
        print(f"broker running at {status.bootstrap} (pid {status.pid}, log {status.log_id})")
    return 0


# -- materialize --------------------------------------------------------------------------------


def cmd_materialize(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.materialize import materialize_assets

    result = materialize_assets(settings, selection=args.select, max_epochs=args.max_epochs)
    for line in result:
        print(line)
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


def cmd_mlflow(args: argparse.Namespace, settings: Settings) -> int:
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [
        str(mlflow),
        "ui",
        "--backend-store-uri",
        settings.mlflow_tracking_uri,
        "--host",
        args.host,
        "--port",
        str(args.port),
    ]
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.execv(command[0], command)  # the tool homes and telemetry switches are inherited
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
        return add_command(sub, name, handler, help_text)

    broker = add("broker", cmd_broker, "start, stop or show the embedded Kafka-compatible broker")
    broker.add_argument("action", choices=["start", "stop", "status"])
    broker.add_argument(
        "--force",
        action="store_true",
        help="stop: stop even if records the broker holds cannot be landed (they are dropped)",
    )

    materialize = add("materialize", cmd_materialize, "run the Dagster assets in-process")
    materialize.add_argument(
        "--select",
        default=None,
        help="asset selection, e.g. 'key:silver/candles+' or '*' for all "
        "(default: all but the walk-forward evaluation)",
    )
    materialize.add_argument("--max-epochs", type=int, default=None)

    serve = add("serve", cmd_serve, "serve predictions over HTTP with BentoML")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=3000)

    dagster = add("dagster", cmd_dagster, "open the Dagster UI on this project's instance")
    dagster.add_argument("--port", type=int, default=3001)

    mlflow_ui = add("mlflow", cmd_mlflow, "open the MLflow UI on this project's tracking store")
    mlflow_ui.add_argument("--host", default="127.0.0.1")
    mlflow_ui.add_argument("--port", type=int, default=5000)

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
    if not args.verbose:  # libraries' INFO chatter drowns the progress bars and results
        for name in ("mlflow", "lightning", "lightning.pytorch", "lightning.fabric"):
            logging.getLogger(name).setLevel(logging.WARNING)
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
