"""`marketlake evaluate`: a registered model and the baselines on an OHLCV file it never saw.

One small model is trained (MLflow on sqlite in a temporary folder) on simulated candles; the
command then scores it on other files through the same feature code path.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest

from pipelines.cli import main
from pipelines.commands.evaluate import gold_from_candle_file
from pipelines.simulator import simulate_candles
from training.config import TrainConfig
from training.train import train_price_model
from warehouse.features import feature_columns

BTC_FILE = "btcusdt_1h_spot_2020-10_2023-12.csv"
METRIC_KEYS = {"n", "directional_accuracy", "ci_low", "ci_high", "mcc", "rank_ic", "mae_ratio_rw"}
END_MS = 1_700_000_000_000 // 3_600_000 * 3_600_000


def write_candle_csv(path: Path, symbol: str, hours: int, seed: int) -> Path:
    rows = pl.DataFrame(list(simulate_candles([symbol], hours=hours, seed=seed, end_ms=END_MS)))
    rows.select("open_time", "open", "high", "low", "close", "volume").write_csv(path)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("evaluate-home")
    uri = f"sqlite:///{home / 'mlflow.db'}"
    gold = gold_from_candle_file(write_candle_csv(home / "train.csv", "AAAUSDT", 700, 1), "AAAUSDT")
    config = TrainConfig(sequence_length=12, hidden_size=8, max_epochs=1, batch_size=128)
    train_price_model(
        gold,
        config,
        feature_candidates=feature_columns(),
        tracking_uri=uri,
        artifacts=home / "artifacts",
        progress=False,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("MARKETLAKE_HOME", str(home))
        yield uri


def test_json_holds_model_and_baselines_with_intervals_per_horizon(
    trained: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unseen = write_candle_csv(tmp_path / "unseen.csv", "ZZZUSDT", 600, 9)
    assert main(["evaluate", "--file", str(unseen), "--symbol", "ZZZUSDT", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"horizons", "backtest"}
    assert set(report["horizons"]) == {"1h", "2h", "4h", "24h"}
    for entry in report["horizons"].values():
        assert set(entry["baselines"]) == {"majority", "persistence", "linear"}
        for metrics in [entry["model"], *entry["baselines"].values()]:
            assert set(metrics) >= METRIC_KEYS
            assert metrics["ci_low"] <= metrics["directional_accuracy"] <= metrics["ci_high"]
            # baselines fitted on the first 30 % + a 24 h purge: the rest is evaluated
            assert 350 < metrics["n"] < 420
        assert 0.0 <= entry["model"]["p_value_vs_best_baseline"] <= 1.0
    strategy = report["backtest"]["by_symbol"]["ZZZUSDT"]["1h"]["long_flat"]
    assert {"strategy", "buy_and_hold"} <= set(strategy)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # no file at all
        (["evaluate"], "exactly one --file"),
        # a version that was never registered
        (["evaluate", "--model", "99"], "no model marketlake-price@99"),
    ],
)
def test_user_errors_exit_2_with_a_message(
    trained: str,
    tmp_path: Path,
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if args != ["evaluate"]:
        args = [*args, "--file", str(write_candle_csv(tmp_path / "f.csv", "ZZZUSDT", 300, 2))]
        args += ["--symbol", "ZZZUSDT"]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_real_btc_file_prints_metric_and_backtest_tables(
    trained: str, capsys: pytest.CaptureFixture[str], shared_data: Callable[[str], Path]
) -> None:
    path = shared_data(BTC_FILE)
    assert main(["evaluate", "--file", str(path), "--symbol", "BTCUSDT"]) == 0
    out = capsys.readouterr().out
    assert "accuracy [95% CI]" in out and "p vs best" in out
    for who in ("model", "majority", "persistence", "linear"):
        assert f"    24h {who}" in out
    assert "BTCUSDT         1h long_flat" in out
