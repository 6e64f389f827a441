"""ML assets: the price model, its walk-forward evaluation, batch predictions and live accuracy.

- ``ml/price_model``: trains, evaluates, registers and maybe promotes (see training.train);
  daily at 04:00 UTC once gold has updated since (``AutomationCondition.on_cron``).
- ``ml/evaluation``: walk-forward evaluation on gold, Mondays at 03:00 UTC once gold has updated
  since (``on_cron``). Both train, so both sit in the concurrency pool ``training`` (limit 1 in
  ``dagster.yaml``): two trainings never run at once. The automation conditions are their only
  trigger (no schedule); the jobs ``train_price_model`` and ``ml_evaluation`` are for launching
  them by hand.
- ``ml/predictions``: the champion predicts every new gold hour into ``gold/predictions``; it runs
  again whenever gold or the model is updated (:func:`assets.automation.follows_upstream`).
- ``ml/live_accuracy``: stored predictions joined with the realised outcomes, per model version
  and horizon with 95 % intervals; after each prediction batch or gold update.
- ``ml/served_live_accuracy``: the same scores for what the HTTP service answered
  (``gold/served_predictions``), each distinct prediction once; after each gold update.
- ``ml/paper_portfolio``: the paper-trading ledger (``gold/paper_trades``, ``gold/paper_equity``)
  follows the stored predictions with the backtest's rule and fees, continuing from its last
  hour (see training.paper_trading); after each prediction batch or candle update.
"""

# torch and MLflow (via training.jobs) are imported inside the assets that need them: every run
# loads this module first, and a run's silver and gold steps should not wait ~3.5 s for them.
# No `from __future__ import annotations` here: Dagster reads the context and config
# annotations at definition time and does not resolve string annotations.

import json

import dagster as dg
from dagster import AssetExecutionContext

from assets.automation import follows_upstream
from assets.gold import GOLD_FEATURES_KEY
from assets.silver import SILVER_CANDLES_KEY, table_checks
from training.config import load_train_config
from training.paper_ledger import paper_portfolio_from_lake
from training.paper_trading import fills_after_signals
from warehouse.catalog import GOLD_PAPER_EQUITY, GOLD_PAPER_TRADES
from warehouse.checks import duplicate_keys

PRICE_MODEL_KEY = dg.AssetKey(["ml", "price_model"])
EVALUATION_KEY = dg.AssetKey(["ml", "evaluation"])
PREDICTIONS_KEY = dg.AssetKey(["ml", "predictions"])
LIVE_ACCURACY_KEY = dg.AssetKey(["ml", "live_accuracy"])
SERVED_LIVE_ACCURACY_KEY = dg.AssetKey(["ml", "served_live_accuracy"])
PAPER_PORTFOLIO_KEY = dg.AssetKey(["ml", "paper_portfolio"])
WEEKLY_CRON = "0 3 * * 1"
"""Mondays 03:00 UTC: when the walk-forward evaluation runs (if gold has updated since)."""
DAILY_TRAINING_CRON = "0 4 * * *"
"""04:00 UTC every day: when the price model is retrained (if gold has updated since)."""
TRAINING_POOL = "training"
"""The concurrency pool of the assets that train (``default_limit: 1`` in dagster.yaml)."""


class PriceModelConfig(dg.Config):
    """Run-time knobs of the training asset; everything else comes from the YAML config."""

    config_path: str | None = None
    max_epochs: int | None = None


class EvaluationConfig(dg.Config):
    """Run-time knobs of the walk-forward evaluation (defaults: six folds of 730 test hours)."""

    config_path: str | None = None
    max_epochs: int | None = None
    folds: int = 6
    test_hours: int = 730
    val_hours: int = 720
    train_hours: int | None = None


@dg.asset(
    key=PRICE_MODEL_KEY,
    deps=[GOLD_FEATURES_KEY],
    group_name="ml",
    required_resource_keys={"lake", "mlflow"},
    kinds={"pytorch", "mlflow"},
    pool=TRAINING_POOL,
    # stale model: retrain daily at 04:00 UTC once gold has new rows since the last training
    automation_condition=dg.AutomationCondition.on_cron(DAILY_TRAINING_CRON),
)
def price_model(context: AssetExecutionContext, config: PriceModelConfig) -> dg.MaterializeResult:
    """Train the LSTM-with-attention price model, evaluate it, register it, promote if better."""
    from training.jobs import train_from_lake

    train_config = load_train_config(config.config_path, max_epochs=config.max_epochs)
    result = train_from_lake(
        context.resources.lake.lake(),
        train_config,
        tracking_uri=context.resources.mlflow.uri(),
        artifacts=context.resources.mlflow.artifacts(),
        progress=False,
    )
    summary = result.to_dict()
    return dg.MaterializeResult(
        metadata={
            "run_id": result.run_id,
            "model_version": result.model_version,
            "promoted": result.promoted,
            "champion_version": result.champion_version or -1,
            "val_direction_accuracy": result.val_score,
            "samples": summary["samples"],
            "test": dg.MetadataValue.json(summary["test"]),
        }
    )


@dg.asset(
    key=EVALUATION_KEY,
    deps=[GOLD_FEATURES_KEY],
    group_name="ml",
    required_resource_keys={"lake", "mlflow"},
    kinds={"pytorch", "mlflow"},
    pool=TRAINING_POOL,
    automation_condition=dg.AutomationCondition.on_cron(WEEKLY_CRON),
)
def evaluation(context: AssetExecutionContext, config: EvaluationConfig) -> dg.MaterializeResult:
    """Walk-forward evaluation of the model configuration beside the baselines, with CIs."""
    from training.jobs import log_walk_forward, walk_forward_from_lake
    from training.walk_forward import WalkForwardConfig

    train = load_train_config(config.config_path, max_epochs=config.max_epochs)
    wf_config = WalkForwardConfig(
        train=train,
        folds=config.folds,
        test_hours=config.test_hours,
        val_hours=config.val_hours,
        train_hours=config.train_hours,
    )
    result, gold_version = walk_forward_from_lake(context.resources.lake.lake(), wf_config)
    if result is None:
        reason = (
            f"gold/features v{gold_version} spans fewer than the {wf_config.required_hours} hours "
            f"that {wf_config.folds} folds of {wf_config.test_hours} test hours need"
        )
        context.log.warning("walk-forward evaluation skipped: %s", reason)
        return dg.MaterializeResult(
            metadata={"skipped": reason, "gold_table_version": gold_version}
        )
    run_id = log_walk_forward(
        result,
        tracking_uri=context.resources.mlflow.uri(),
        artifacts=context.resources.mlflow.artifacts(),
        gold_version=gold_version,
    )
    return dg.MaterializeResult(
        metadata={
            "run_id": run_id,
            "gold_table_version": gold_version,
            "test_hours": result.report["test_hours_total"],
            "accuracy": dg.MetadataValue.md(_accuracy_markdown(result.report["horizons"])),
        }
    )


@dg.asset(
    key=PREDICTIONS_KEY,
    deps=[PRICE_MODEL_KEY, GOLD_FEATURES_KEY],
    group_name="ml",
    required_resource_keys={"lake", "mlflow"},
    kinds={"pytorch", "deltalake"},
    automation_condition=follows_upstream(),
)
def predictions(context: AssetExecutionContext) -> dg.MaterializeResult:
    """The champion's predictions for every new gold hour, written to gold/predictions."""
    from training.jobs import predict_from_lake

    report = predict_from_lake(
        context.resources.lake.lake(), tracking_uri=context.resources.mlflow.uri()
    )
    return dg.MaterializeResult(
        metadata={k: v for k, v in report.to_dict().items() if v is not None}
    )


@dg.asset(
    key=LIVE_ACCURACY_KEY,
    deps=[PREDICTIONS_KEY, GOLD_FEATURES_KEY],
    group_name="ml",
    required_resource_keys={"lake"},
    kinds={"polars"},
    automation_condition=follows_upstream(),
)
def live_accuracy(context: AssetExecutionContext) -> dg.MaterializeResult:
    """Realised directional accuracy of stored predictions per model version and horizon."""
    from training.jobs import live_accuracy_from_lake

    result = live_accuracy_from_lake(context.resources.lake.lake())
    table = result.table
    return dg.MaterializeResult(
        metadata={
            "source": "gold/predictions",
            "scored": int(table["n"].sum()),
            "pending": int(table["pending"].sum()),
            "accuracy": dg.MetadataValue.md(result.markdown()),
        }
    )


@dg.asset(
    key=SERVED_LIVE_ACCURACY_KEY,
    deps=[GOLD_FEATURES_KEY],
    group_name="ml",
    required_resource_keys={"lake"},
    kinds={"polars"},
    automation_condition=follows_upstream(),
)
def served_live_accuracy(context: AssetExecutionContext) -> dg.MaterializeResult:
    """Realised directional accuracy of the predictions the HTTP service answered."""
    from training.jobs import served_live_accuracy_from_lake
    from training.predictions import SERVED_KEY

    result = served_live_accuracy_from_lake(context.resources.lake.lake())
    if result is None:
        reason = "gold/served_predictions does not exist yet: the service has answered nothing"
        context.log.info("served live accuracy skipped: %s", reason)
        return dg.MaterializeResult(
            metadata={"source": "gold/served_predictions", "skipped": reason}
        )
    table = result.table
    return dg.MaterializeResult(
        metadata={
            "source": "gold/served_predictions",
            "served_rows": result.rows,
            "duplicates_dropped": result.duplicates_dropped,
            "deduplicated_on": ", ".join(SERVED_KEY) + " (the first served row is kept)",
            "scored": int(table["n"].sum()),
            "pending": int(table["pending"].sum()),
            "accuracy": dg.MetadataValue.md(result.markdown()),
        }
    )


evaluation_job = dg.define_asset_job("ml_evaluation", selection=[EVALUATION_KEY])
"""Launch the walk-forward evaluation by hand (its automation condition runs it weekly)."""


def _accuracy_markdown(horizons: dict) -> str:
    lines = ["| horizon | who | accuracy | 95% CI |", "|---|---|---|---|"]
    for horizon, entry in horizons.items():
        for who, m in [("model", entry["model"]), *entry["baselines"].items()]:
            lines.append(
                f"| {horizon} | {who} | {m['directional_accuracy']:.3f} | "
                f"[{m['ci_low']:.3f}, {m['ci_high']:.3f}] |"
            )
    return "\n".join(lines)


training_job = dg.define_asset_job(
    "train_price_model", selection=dg.AssetSelection.assets(PRICE_MODEL_KEY)
)
"""Launch a training by hand (its automation condition retrains daily at 04:00 UTC)."""


class PaperPortfolioConfig(dg.Config):
    """``rebuild``: book the whole history again and replace both tables (default False:
    continue from the last stored hour)."""

    rebuild: bool = False


@dg.asset(
    key=PAPER_PORTFOLIO_KEY,
    deps=[PREDICTIONS_KEY, SILVER_CANDLES_KEY],
    group_name="ml",
    required_resource_keys={"lake"},
    kinds={"polars", "deltalake"},
    automation_condition=follows_upstream(),
)
def paper_portfolio(
    context: AssetExecutionContext, config: PaperPortfolioConfig
) -> dg.MaterializeResult:
    """The paper-trading ledger: the predictions traded by the backtest's rule, fees, equity."""
    report = paper_portfolio_from_lake(context.resources.lake.lake(), rebuild=config.rebuild)
    if report.skipped is not None:
        context.log.info("paper portfolio skipped: %s", report.skipped)
    metadata = {k: v for k, v in report.to_dict().items() if v is not None and k != "rule"}
    metadata["rule"] = dg.MetadataValue.json(json.loads(report.rule))
    if report.equity is not None and report.buy_and_hold_equity is not None:
        metadata["excess_return"] = report.equity - report.buy_and_hold_equity
    return dg.MaterializeResult(metadata=metadata)


PAPER_PORTFOLIO_CHECKS = [
    *table_checks(
        PAPER_PORTFOLIO_KEY,
        GOLD_PAPER_TRADES,
        {
            "fills_after_signals": (
                fills_after_signals,
                dg.AssetCheckSeverity.ERROR,
                "Every fill is at the open of a bar at least 1 h after the prediction behind it.",
            ),
            "one_fill_per_bar": (
                lambda f: duplicate_keys(f, ["symbol", "fill_ts"]),
                dg.AssetCheckSeverity.ERROR,
                "No two fills share (symbol, fill_ts).",
            ),
        },
        columns=["symbol", "signal_ts", "fill_ts"],
    ),
    *table_checks(
        PAPER_PORTFOLIO_KEY,
        GOLD_PAPER_EQUITY,
        {
            "one_equity_row_per_bar": (
                lambda f: duplicate_keys(f, ["symbol", "ts"]),
                dg.AssetCheckSeverity.ERROR,
                "No two equity rows share (symbol, ts) (the portfolio's symbol is _portfolio).",
            ),
        },
        columns=["symbol", "ts"],
    ),
]
