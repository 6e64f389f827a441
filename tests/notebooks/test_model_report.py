"""notebooks/model_report.ipynb runs top to bottom against a small MLflow and lake built here."""

from __future__ import annotations

from pathlib import Path

import nbformat
import polars as pl
import pytest
from nbclient import NotebookClient

from pipelines.simulator import simulate_candles
from training.config import TrainConfig
from training.jobs import log_walk_forward, predict_from_lake
from training.train import train_price_model
from training.walk_forward import WalkForwardConfig, run_walk_forward
from warehouse.catalog import GOLD_FEATURES
from warehouse.features import build_gold_features, feature_columns
from warehouse.lake import Lake, overwrite

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "model_report.ipynb"
END_MS = 1_700_000_000_000 // 3_600_000 * 3_600_000


def simulated_gold(hours: int) -> pl.DataFrame:
    candles = pl.DataFrame(
        list(simulate_candles(["BTCUSDT", "ETHUSDT"], hours=hours, seed=5, end_ms=END_MS))
    )
    silver = candles.select(
        "symbol",
        pl.from_epoch("open_time", time_unit="ms").dt.replace_time_zone("UTC").alias("ts"),
        "open",
        "high",
        "low",
        "close",
        "volume",
    )
    return build_gold_features(silver)


def test_model_report_executes_and_shows_every_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    uri = f"sqlite:///{home / 'mlflow.db'}"
    home.mkdir()
    for name, value in {
        "MARKETLAKE_HOME": str(home),
        "MARKETLAKE_LAKE_URI": str(home / "lake"),
        "MLFLOW_TRACKING_URI": uri,
        "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "MPLCONFIGDIR": str(tmp_path / "matplotlib"),
        "PYTHONPATH": str(REPO),
    }.items():
        monkeypatch.setenv(name, value)
    gold = simulated_gold(700)
    lake = Lake(str(home / "lake"))
    overwrite(lake.location(GOLD_FEATURES), gold)
    config = TrainConfig(sequence_length=12, hidden_size=8, max_epochs=1, batch_size=128)
    artifacts = home / "mlartifacts"
    train_price_model(
        gold,
        config,
        feature_candidates=feature_columns(),
        tracking_uri=uri,
        artifacts=artifacts,
        progress=False,
    )
    predict_from_lake(lake, tracking_uri=uri)
    walk_forward = run_walk_forward(
        gold,
        WalkForwardConfig(
            train=config, folds=1, test_hours=100, val_hours=100, min_total_test_hours=0
        ),
        progress=False,
    )
    log_walk_forward(walk_forward, tracking_uri=uri, artifacts=artifacts)

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}
    ).execute()

    text = "\n".join(
        str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert "champion: 1" in text
    assert "p_vs_best" in text  # the metric table of the test split
    assert "buy_hold_return" in text  # the backtest table
    assert "figures/calibration_1h.png" in text
    assert "1 folds, 100 test hours" in text
    assert "directional_accuracy" in text and "pending" in text  # live accuracy
