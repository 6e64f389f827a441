"""`marketlake train` and `marketlake models`: the price model lifecycle."""

from __future__ import annotations

import argparse
from typing import Any

from pipelines.command_line import add_command, print_json
from warehouse.errors import MarketlakeError
from warehouse.settings import Settings


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
        print_json(result.to_dict())
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
            print_json([v.__dict__ for v in versions])
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


def register(sub: Any) -> None:
    """Add this module's subcommands to the ``marketlake`` parser."""
    train = add_command(sub, "train", cmd_train, "train, evaluate and register the price model")
    train.add_argument("--config", help="YAML training config (see training/config.py)")
    train.add_argument("--max-epochs", type=int, default=None)
    train.add_argument("--json", action="store_true")

    models = add_command(
        sub, "models", cmd_models, "list, promote or roll back registered price models"
    )
    models.add_argument("action", choices=["list", "promote", "rollback"])
    models.add_argument("version", nargs="?", type=int)
    models.add_argument("--json", action="store_true")
