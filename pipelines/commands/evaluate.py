"""`marketlake evaluate`: a registered model and the baselines on data the model has not seen.

Single file (``--file F --symbol S``): the OHLCV file goes through the lake's own code path
(candles -> silver resampling and gap flags -> gold features and targets), the registered model
predicts every hour with a full window, and the baselines are fitted on the first
``--fit-fraction`` (default 30 %) of the file's hours; a purge gap of the longest horizon separates
those hours from the evaluated ones, and the model and the baselines are scored on exactly the same
evaluated rows. Nothing is fitted on an evaluated row.

Walk-forward (``--walk-forward``): trains a fresh model per fold on the lake's gold table (or on
the gold of the given files) and reports the pooled test metrics beside the baselines; see
:mod:`training.walk_forward`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from warehouse.errors import ConfigError, MarketlakeError
from warehouse.settings import Settings


def gold_from_candle_file(path: Path | str, symbol: str | None) -> pl.DataFrame:
    """The gold features and targets of one OHLCV file (every layout ``produce`` accepts).

    Args:
        path: the OHLCV file.
        symbol: the pair; required when the file has no symbol column, a filter when it has one.
    """
    from pipelines.sources.candle_files import read_candle_file
    from warehouse.features import build_gold_features
    from warehouse.silver import build_silver_candles

    candles = read_candle_file(path, symbol=symbol)
    if candles.is_empty():
        raise MarketlakeError(f"{path}: no candles for symbol {symbol}")
    bronze_like = candles.with_columns(
        pl.from_epoch("open_time", time_unit="ms").dt.replace_time_zone("UTC")
    )
    silver = build_silver_candles(bronze_like).with_columns(
        pl.col("ts").cast(pl.Datetime("us", "UTC"))
    )
    return build_gold_features(silver)


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    if args.walk_forward:
        return _walk_forward(args, settings)
    if len(args.file or []) != 1:
        raise ConfigError("give exactly one --file F (and --symbol S) to evaluate a model on")
    from tqdm import tqdm

    from training.config import MODEL_NAME
    from training.evaluation import evaluate_report, file_split, score_samples
    from training.registry import load_registered

    symbols = args.symbol or [None]
    steps = tqdm(total=4, desc="evaluate", disable=args.json, file=sys.stderr)
    steps.set_postfix_str("features")
    gold = gold_from_candle_file(args.file[0], symbols[0])
    steps.update()
    steps.set_postfix_str(f"load {MODEL_NAME}@{args.model}")
    loaded = load_registered(settings.mlflow_tracking_uri, MODEL_NAME, args.model)
    steps.update()
    steps.set_postfix_str("predict and fit baselines")
    horizons = loaded.predictor.horizons
    fit_end, eval_start = file_split(
        gold, fit_fraction=args.fit_fraction, purge_hours=max(horizons)
    )
    samples = score_samples(loaded.predictor, gold, fit_end=fit_end, eval_start=eval_start)
    steps.update()
    steps.set_postfix_str("metrics and backtest")
    report = evaluate_report(samples)
    steps.update()
    steps.close()
    seen = _overlap_note(loaded.predictor.bundle.info, eval_start)
    note = (
        f"model {MODEL_NAME} v{loaded.version}; baselines fitted on rows up to {fit_end}; "
        f"evaluated from {eval_start} to {gold['ts'].max()} ({samples.height} samples){seen}"
    )
    if args.json:
        print(note, file=sys.stderr)
        print(json.dumps(_json_safe(report), indent=2))
        return 0
    print(note)
    print_report(report)
    return 0


def print_report(report: dict[str, Any]) -> None:
    """The metric table per horizon and the backtest table, as plain text."""
    header = f"{'horizon':>7} {'who':<12} {'n':>6} {'accuracy [95% CI]':<24} {'MCC':>7}"
    print(header + f" {'rank-IC':>8} {'MAE/RW':>7} {'p vs best':>9}")
    for horizon, entry in report["horizons"].items():
        rows = [("model", entry["model"]), *entry["baselines"].items()]
        for who, m in rows:
            acc = f"{m['directional_accuracy']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"
            p = m.get("p_value_vs_best_baseline")
            print(
                f"{horizon:>7} {who:<12} {m['n']:>6} {acc:<24} {m['mcc']:>7.3f} "
                f"{m['rank_ic']:>8.3f} {_num(m['mae_ratio_rw']):>7} {_num(p, 3):>9}"
            )
    print()
    backtest = report["backtest"]
    config = backtest["config"]
    print(
        f"backtest ({backtest['trading']}; fee {config['fee_bps']} bps + slippage "
        f"{config['slippage_bps']} bps; long at p >= {config['long_threshold']}, short at "
        f"p <= {config['short_threshold']})"
    )
    print(
        f"{'symbol':<10} {'horizon':>7} {'strategy':<11} {'total':>8} {'annual':>8} "
        f"{'Sharpe':>7} {'max DD':>7} {'turnover':>9} {'b&h total':>10} {'b&h Sharpe':>10}"
    )
    for symbol, by_horizon in backtest["by_symbol"].items():
        for horizon, by_mode in by_horizon.items():
            for mode, result in by_mode.items():
                s, h = result["strategy"], result["buy_and_hold"]
                print(
                    f"{symbol:<10} {horizon:>7} {mode:<11} {_pct(s['total_return']):>8} "
                    f"{_pct(s['annualised_return']):>8} {_num(s['sharpe'], 2):>7} "
                    f"{_pct(s['max_drawdown']):>7} {_num(s['turnover'], 0):>9} "
                    f"{_pct(h['total_return']):>10} {_num(h['sharpe'], 2):>10}"
                )


def _walk_forward(args: argparse.Namespace, settings: Settings) -> int:
    from training.config import load_train_config
    from training.walk_forward import WalkForwardConfig, run_walk_forward

    train = load_train_config(args.config, max_epochs=args.max_epochs)
    options: dict[str, Any] = {"train": train}
    for name in ("folds", "test_hours", "train_hours", "val_hours"):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    config = WalkForwardConfig(**options)
    if args.file:
        symbols = args.symbol or []
        if len(symbols) not in (0, len(args.file)):
            raise ConfigError("give one --symbol per --file (or none, for files with a ticker)")
        frames = [
            gold_from_candle_file(f, symbols[i] if symbols else None)
            for i, f in enumerate(args.file)
        ]
        gold = pl.concat(frames, how="vertical_relaxed")
        source = ", ".join(str(f) for f in args.file)
    else:
        from training.jobs import read_gold

        gold, version = read_gold(_lake(settings))
        source = f"gold/features version {version}"
    report = run_walk_forward(gold, config, progress=not args.json).report
    report["source"] = source
    if args.json:
        print(json.dumps(_json_safe(report), indent=2))
        return 0
    print(f"walk-forward on {source}: {len(report['folds'])} folds")
    for fold in report["folds"]:
        print(
            f"  fold {fold['fold']}: train {fold['train_start']} .. {fold['train_end']}, "
            f"test {fold['test_start']} .. {fold['test_end']} ({fold['test_samples']} samples)"
        )
    print_report({"horizons": report["horizons"], "backtest": report["backtest"]})
    return 0


def _lake(settings: Settings) -> Any:
    from warehouse.lake import Lake

    return Lake(settings.lake_uri, settings.storage_options)


def _overlap_note(info: dict[str, Any], eval_start: datetime) -> str:
    """A warning when the evaluated period starts before the model's validation ended."""
    val_end = info.get("val_end")
    if val_end and eval_start <= datetime.fromisoformat(val_end):
        return (
            f"; WARNING: this model was fitted on data up to {val_end}: if this file covers the "
            "same market, the score is not out of sample"
        )
    return ""


def _num(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1%}"


def _json_safe(value: Any) -> Any:
    """NaN and infinities become ``null`` so that the output is strict JSON."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


def register(sub: Any) -> None:
    """Add ``marketlake evaluate`` to the ``marketlake`` parser."""
    help_text = "score a registered model and the baselines on an unseen OHLCV file"
    command = sub.add_parser("evaluate", help=help_text, description=__doc__)
    command.set_defaults(handler=cmd_evaluate)
    command.add_argument(
        "--file", action="append", help="OHLCV file (repeat with --walk-forward for several)"
    )
    command.add_argument("--symbol", action="append", help="symbol of the file (one per --file)")
    command.add_argument("--model", default="champion", help="alias or version (default champion)")
    command.add_argument(
        "--fit-fraction",
        type=float,
        default=0.3,
        help="share of the file's hours the baselines are fitted on (default 0.3)",
    )
    command.add_argument(
        "--walk-forward", action="store_true", help="train and test per fold instead"
    )
    command.add_argument("--config", help="YAML training config for --walk-forward")
    command.add_argument("--max-epochs", type=int, default=None)
    command.add_argument("--folds", type=int, default=None, help="walk-forward folds (default 6)")
    command.add_argument("--test-hours", type=int, default=None, help="test hours per fold")
    command.add_argument("--train-hours", type=int, default=None, help="rolling window (hours)")
    command.add_argument("--val-hours", type=int, default=None, help="validation hours per fold")
    command.add_argument("--json", action="store_true")
