"""Gold-feature throughput: ``warehouse.features`` (Polars) against a plain pandas version.

Data: a seeded geometric Brownian walk (no real data is tiled), on a gap-free grid, 7 symbols
named like Binance pairs (one is BTCUSDT, so the market factor is exercised):

* ``hourly``: 7 symbols x 3 years of hourly candles (about 184k rows);
* ``minute``: ``--rows`` one-minute rows (default 10 million) through the same functions.

Each case runs in its own subprocess so its peak RSS (VmHWM, input included) is its own.
The pandas version implements the same definitions with groupby + time-based rolling; on a
gap-free grid its row-wise EWM equals the time-decayed EWM of the Polars version, and the script
checks both agree on a sample (max abs diff, relative to max(1, |value|)) before timing.
``incremental`` times ``build_gold_features_for_range`` for the last hour of the hourly frame.

    python benchmarks/features.py                  # full size, prints a table
    python benchmarks/features.py --rows 1000000 --json   # table on stderr, JSON on stdout
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bench_env  # noqa: F401  (first: import path and tool homes)
import numpy as np
import pandas as pd
import polars as pl

from warehouse.feature_spec import (
    BETA_HOURS,
    EMA_WARMUP_HOURS,
    HORIZONS,
    MIN_WINDOW_COVERAGE,
    RETURN_HOURS,
    ema_alpha,
)
from warehouse.features import (
    build_gold_features,
    build_gold_features_for_range,
    feature_columns,
    target_columns,
)

SYMBOLS = ("ADAUSDT", "BNBUSDT", "BTCUSDT", "DOGEUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")
START_PRICES = (0.4, 250.0, 30000.0, 0.08, 2000.0, 60.0, 0.6)
HOURLY_YEARS = 3
SEED = 7
TARGETS = {"speedup": 10.0, "peak_rss_mb_10m": 4096.0, "incremental_hour_s": 1.0}


SENTIMENT_TEXTS = (
    "Bitcoin jumps 8% as spot ETF inflows hit a record high",
    "Ether slides after a major exchange halts withdrawals following a hack",
    "The central bank left interest rates unchanged on Wednesday",
    "Solana network suffers its third outage this year, validators restart the chain",
    "Quarterly revenue rose 12% to EUR 4.1 mn, beating analyst expectations",
    "Traders brace for volatility ahead of the monthly options expiry",
    "XRP rallies after the court ruling, short sellers liquidated",
    "Dogecoin volume fades as meme-coin mania cools",
)
"""Headline-length sample posts, cycled by the throughput measurement."""

SENTIMENT_SECONDS = 2.0


def sentiment_throughput(*, seconds: float = SENTIMENT_SECONDS) -> dict[str, float]:
    """Posts scored per second by each sentiment model, keyed by model.

    ``lexicon``: the offline VADER + finance lexicon model (batches of 256).
    ``bert_base_random_seq64``: a BERT-base-sized classifier with random weights, every post
    padded or cut to 64 tokens (batches of 16): what FinBERT costs, measurable with no weights.
    ``finbert``: FinBERT itself, only when its weights are on this machine (same settings).

    Args:
        seconds: how long each model is timed after one warm-up batch; default 2.0.
    """
    from training.sentiment import (
        FinBertOptions,
        load_finbert,
        load_sentiment_model,
        locate_finbert,
        random_bert_base_model,
    )
    from training.sentiment import (
        sentiment_throughput as measure,
    )
    from warehouse.errors import ModelNotFoundError

    bert = FinBertOptions(batch_size=16, max_length=64, pad_to_max_length=True)
    texts = list(SENTIMENT_TEXTS)
    rates = {
        "lexicon": measure(load_sentiment_model("lexicon"), texts, seconds=seconds),
        "bert_base_random_seq64": measure(
            random_bert_base_model(options=bert), texts, seconds=seconds, batch_size=16
        ),
    }
    try:
        locate_finbert()
    except ModelNotFoundError:
        return rates
    rates["finbert"] = measure(load_finbert(options=bert), texts, seconds=seconds, batch_size=16)
    return rates


# --- data ------------------------------------------------------------------------------------


def synthetic_candles(rows_per_symbol: int, step: timedelta, *, seed: int = SEED) -> pl.DataFrame:
    """A seeded GBM walk per symbol on a gap-free grid, sorted by ``symbol, ts``."""
    rng = np.random.default_rng(seed)
    start = datetime(2021, 1, 1, tzinfo=UTC)
    ts = pl.datetime_range(
        start, start + step * (rows_per_symbol - 1), step, eager=True, time_zone="UTC"
    ).dt.cast_time_unit("us")
    sigma = 0.01 * math.sqrt(step / timedelta(hours=1))
    frames = []
    for symbol, price in zip(SYMBOLS, START_PRICES, strict=True):
        close = price * np.exp(np.cumsum(rng.normal(0.0, sigma, rows_per_symbol)))
        open_ = np.concatenate(([price], close[:-1]))
        wick = np.abs(rng.normal(0.0, sigma / 2, (2, rows_per_symbol)))
        frames.append(
            pl.DataFrame(
                {
                    "symbol": symbol,
                    "ts": ts,
                    "open": open_,
                    "high": np.maximum(open_, close) * (1 + wick[0]),
                    "low": np.minimum(open_, close) * (1 - wick[1]),
                    "close": close,
                    "volume": rng.lognormal(8.0, 1.0, rows_per_symbol),
                }
            )
        )
    return pl.concat(frames)


# --- the pandas reference ----------------------------------------------------------------------


def pandas_features(candles: pd.DataFrame) -> pd.DataFrame:
    """The candle features and targets of ``warehouse.features``, written plainly in pandas."""
    df = candles.sort_values(["symbol", "ts"], kind="stable").reset_index(drop=True)
    symbol, ts, close = df["symbol"], df["ts"], df["close"].to_numpy()
    hour = pd.Timedelta(hours=1)
    step = ts.diff()[symbol.eq(symbol.shift())].min()
    by_key = pd.Series(close, index=pd.MultiIndex.from_arrays([symbol, ts]))

    def close_at(offset: pd.Timedelta) -> np.ndarray:
        return by_key.reindex(pd.MultiIndex.from_arrays([symbol, ts + offset])).to_numpy()

    def rolling(values: np.ndarray, hours: int, stat: str, at_least: int = 1) -> np.ndarray:
        frame = pd.DataFrame({"x": values, "symbol": symbol.to_numpy()}, index=ts.to_numpy())
        min_periods = max(at_least, math.ceil(MIN_WINDOW_COVERAGE * hours))
        window = frame.groupby("symbol", sort=False)["x"].rolling(
            f"{hours}h", min_periods=min_periods
        )
        return getattr(window, stat)().to_numpy()

    def ema(values: np.ndarray, alpha: float) -> np.ndarray:
        per_row = 1 - (1 - alpha) ** (step / hour)  # the hourly decay, per grid step
        grouped = pd.Series(values).groupby(symbol.to_numpy(), sort=False)
        return grouped.transform(lambda s: s.ewm(alpha=per_row, adjust=False).mean()).to_numpy()

    def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(b != 0, a / b, np.nan)

    out = {"symbol": symbol, "ts": ts}
    for h in RETURN_HOURS:
        out[f"return_{h}h"] = close / close_at(-h * hour) - 1
    for h in RETURN_HOURS:
        out[f"log_return_{h}h"] = np.log(close / close_at(-h * hour))
    r1 = out["log_return_1h"]
    for h in (6, 24, 72, 168):
        out[f"realised_vol_{h}h"] = rolling(r1, h, "std", at_least=2)
    for h in (12, 24, 72, 168):
        out[f"sma_ratio_{h}h"] = close / rolling(close, h, "mean") - 1
    prev = df.groupby("symbol", sort=False)["close"].shift(1).to_numpy()
    warm = rolling(np.ones(len(df)), EMA_WARMUP_HOURS, "sum") >= math.ceil(
        MIN_WINDOW_COVERAGE * EMA_WARMUP_HOURS
    )
    ema12, ema26 = ema(close, ema_alpha(12)), ema(close, ema_alpha(26))
    out["ema_ratio_12h"] = np.where(warm, close / ema12 - 1, np.nan)
    out["ema_ratio_26h"] = np.where(warm, close / ema26 - 1, np.nan)
    macd = ema12 - ema26
    signal = ema(macd, ema_alpha(9))
    out["macd"] = np.where(warm, macd / close, np.nan)
    out["macd_signal"] = np.where(warm, signal / close, np.nan)
    out["macd_hist"] = np.where(warm, (macd - signal) / close, np.nan)
    gain = ema(np.clip(close - prev, 0, None), 1 / 14)
    loss = ema(np.clip(prev - close, 0, None), 1 / 14)
    out["rsi_14h"] = np.where(warm, 100 * ratio(gain, gain + loss), np.nan)
    mean20, std20 = rolling(close, 20, "mean"), rolling(close, 20, "std", at_least=2)
    out["bollinger_pct_b_20h"] = ratio(close - mean20 + 2 * std20, 4 * std20)
    out["bollinger_width_20h"] = ratio(4 * std20, mean20)
    high, low, volume = df["high"].to_numpy(), df["low"].to_numpy(), df["volume"].to_numpy()
    true_range = np.fmax(high - low, np.fmax(np.abs(high - prev), np.abs(low - prev)))
    out["atr_14h"] = np.where(warm, ema(true_range, 1 / 14) / close, np.nan)
    out["hl_range"] = (high - low) / close
    out["close_position"] = ratio(close - low, high - low)
    for h in (24, 168):
        out[f"volume_zscore_{h}h"] = ratio(
            volume - rolling(volume, h, "mean"), rolling(volume, h, "std", at_least=2)
        )
    out["volume_ratio_24h"] = ratio(volume, rolling(volume, 24, "mean"))
    btc = df[symbol == "BTCUSDT"]
    btc_close = pd.Series(btc["close"].to_numpy(), index=btc["ts"])
    btc_now = btc_close.reindex(ts).to_numpy()
    btc_r1 = btc_now / btc_close.reindex(ts - hour).to_numpy()
    out["btc_return_1h"] = btc_r1 - 1
    out["btc_return_24h"] = btc_now / btc_close.reindex(ts - 24 * hour).to_numpy() - 1
    both = ~np.isnan(r1) & ~np.isnan(btc_r1)
    x, y = np.where(both, r1, np.nan), np.where(both, np.log(btc_r1), np.nan)
    m = {
        k: rolling(v, BETA_HOURS, "mean")
        for k, v in {"x": x, "y": y, "xy": x * y, "xx": x * x, "yy": y * y}.items()
    }
    cov, var_x, var_y = m["xy"] - m["x"] * m["y"], m["xx"] - m["x"] ** 2, m["yy"] - m["y"] ** 2
    out["btc_beta_168h"] = ratio(cov, np.where(var_y > 0, var_y, np.nan))
    both_var = np.where((var_x > 0) & (var_y > 0), np.sqrt(var_x * var_y), np.nan)
    out["btc_corr_168h"] = np.clip(ratio(cov, both_var), -1, 1)
    hours, dow = ts.dt.hour.to_numpy(), ts.dt.dayofweek.to_numpy()
    out["hour_sin"], out["hour_cos"] = (
        np.sin(2 * np.pi * hours / 24),
        np.cos(2 * np.pi * hours / 24),
    )
    out["dow_sin"], out["dow_cos"] = np.sin(2 * np.pi * dow / 7), np.cos(2 * np.pi * dow / 7)
    out["is_weekend"] = (dow >= 5).astype(float)
    for prefix in ("sentiment", "market_sentiment"):
        out[f"{prefix}_count_1h"] = np.zeros(len(df))
        for stat in ("mean_1h", "positive_share_1h", "momentum"):
            out[f"{prefix}_{stat}"] = np.full(len(df), np.nan)
    out["fear_greed"] = np.full(len(df), np.nan)
    for h in HORIZONS:
        out[f"target_return_{h}h"] = close_at(h * hour) / close - 1
    for h in HORIZONS:
        ret = out[f"target_return_{h}h"]
        out[f"target_direction_{h}h"] = np.where(np.isnan(ret), np.nan, (ret > 0).astype(float))
    return pd.DataFrame(out)


def compare(polars_out: pl.DataFrame, pandas_out: pd.DataFrame) -> tuple[float, str, bool]:
    """Max abs diff (scaled by max(1, |pandas value|)) over all columns; nulls must coincide."""
    worst, worst_column, nulls_agree = 0.0, "", True
    for column in feature_columns() + target_columns():
        ours = polars_out[column].cast(pl.Float64).to_numpy()
        theirs = pandas_out[column].to_numpy(dtype=float)
        if not np.array_equal(np.isnan(ours), np.isnan(theirs)):
            nulls_agree = False
            worst_column = f"{column} (null pattern)"
        both = ~np.isnan(ours) & ~np.isnan(theirs)
        if both.any():
            diff = float(
                np.max(np.abs(ours[both] - theirs[both]) / np.maximum(1, np.abs(theirs[both])))
            )
            if diff > worst:
                worst, worst_column = diff, column if nulls_agree else worst_column
    return worst, worst_column, nulls_agree


# --- cases (each in its own process) -----------------------------------------------------------


def _peak_rss_mb() -> float:
    """This process's peak RSS in MB: VmHWM on Linux (``ru_maxrss`` keeps the parent's peak)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(case: str, path: Path, repeat: int) -> dict[str, float]:
    """Time one case on the parquet file at ``path``; return seconds (best of) and peak RSS."""
    candles = pl.read_parquet(path)
    loaded = _peak_rss_mb()
    best = math.inf
    for _ in range(repeat):
        if case == "polars":
            began = time.perf_counter()
            build_gold_features(candles)
        elif case == "pandas":
            frame = candles.to_pandas()
            began = time.perf_counter()
            pandas_features(frame)
        else:  # incremental: the last hour of the frame
            last = candles["ts"].max()
            began = time.perf_counter()
            build_gold_features_for_range(candles, last, last + timedelta(hours=1))
        best = min(best, time.perf_counter() - began)
    return {"seconds": best, "peak_rss_mb": _peak_rss_mb(), "input_rss_mb": loaded}


def _spawn(case: str, path: Path, repeat: int) -> dict[str, float]:
    command = [
        sys.executable,
        __file__,
        "--case",
        case,
        "--input",
        str(path),
        "--repeat",
        str(repeat),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"case {case} on {path.name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; ``--json`` prints one object, otherwise a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="minute rows (default 10M)")
    parser.add_argument("--years", type=float, default=HOURLY_YEARS, help="hourly years (3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--skip-pandas-minute", action="store_true", help="no pandas minute run")
    parser.add_argument(
        "--case", choices=("polars", "pandas", "incremental"), help=argparse.SUPPRESS
    )
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case, args.input, args.repeat)))
        return 0

    hourly = synthetic_candles(int(args.years * 365 * 24), timedelta(hours=1))
    sample = hourly.filter(pl.col("ts") < pl.col("ts").min() + timedelta(hours=2000))
    max_diff, column, nulls_agree = compare(
        build_gold_features(sample), pandas_features(sample.to_pandas())
    )
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="marketlake-bench-") as folder:
        hourly_path, minute_path = Path(folder) / "hourly.parquet", Path(folder) / "minute.parquet"
        hourly.write_parquet(hourly_path)
        del hourly
        synthetic_candles(args.rows // len(SYMBOLS), timedelta(minutes=1)).write_parquet(
            minute_path
        )
        results["hourly polars"] = _spawn("polars", hourly_path, 3)
        results["hourly pandas"] = _spawn("pandas", hourly_path, 1)
        results["incremental hour"] = _spawn("incremental", hourly_path, 5)
        results["minute polars"] = _spawn("polars", minute_path, 1)
        if not args.skip_pandas_minute:
            results["minute pandas"] = _spawn("pandas", minute_path, 1)

    def ratio(case: str) -> float | None:
        if f"{case} pandas" not in results:
            return None
        return results[f"{case} pandas"]["seconds"] / results[f"{case} polars"]["seconds"]

    summary = {
        "features_s": results["hourly polars"]["seconds"],
        "pandas_s": results["hourly pandas"]["seconds"],
        "speedup": ratio("hourly"),
        "peak_rss_mb_10m": results["minute polars"]["peak_rss_mb"],
        "incremental_hour_s": results["incremental hour"]["seconds"],
        "sentiment_posts_per_s": sentiment_throughput(),
        "features_minute_s": results["minute polars"]["seconds"],
        "pandas_minute_s": results.get("minute pandas", {}).get("seconds"),
        "speedup_minute": ratio("minute"),
        "minute_rows": args.rows // len(SYMBOLS) * len(SYMBOLS),
        "check_max_abs_diff": max_diff,
        "check_nulls_agree": nulls_agree,
    }
    out = sys.stderr if args.json else sys.stdout  # with --json, stdout holds one object only
    print(
        f"pandas check on {sample.height} hourly rows: max scaled abs diff {max_diff:.2e} "
        f"({column or 'all equal'}), nulls agree: {nulls_agree}",
        file=out,
    )
    print(f"{'case':<18}{'seconds':>10}{'peak RSS MB':>14}{'input RSS MB':>14}", file=out)
    for case, r in results.items():
        print(
            f"{case:<18}{r['seconds']:>10.3f}{r['peak_rss_mb']:>14.0f}{r['input_rss_mb']:>14.0f}",
            file=out,
        )
    for case in ("hourly", "minute"):
        if (value := ratio(case)) is not None:
            target = TARGETS["speedup"]
            print(f"{case} speedup over pandas: {value:.1f}x (target >= {target:.0f}x)", file=out)
    print(
        f"minute peak RSS: {summary['peak_rss_mb_10m']:.0f} MB (target <= 4096 MB); "
        f"incremental hour: {summary['incremental_hour_s']:.3f} s (target < 1 s)",
        file=out,
    )
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
