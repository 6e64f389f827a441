"""The whole flow on real components: embedded broker → ingest → Dagster → MLflow → bentoml serve.

Every step runs through the ``marketlake`` command line in its own process, as a user runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import polars as pl
import pytest

from pipelines.broker import free_port
from pipelines.demo import start_service, stop_service, wait_ready
from warehouse.catalog import GOLD_SERVED_PREDICTIONS
from warehouse.lake import Lake, read_table, table_version

pytestmark = pytest.mark.e2e

MARKETLAKE = str(Path(sys.executable).with_name("marketlake"))


@pytest.fixture(scope="module")
def flow_env(broker: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("e2e-home")
    env = dict(os.environ)
    env.update(
        {
            "MARKETLAKE_HOME": str(home),
            "MARKETLAKE_KAFKA_BOOTSTRAP": broker,
            "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
            "DAGSTER_HOME": str(home / "dagster"),
            "BENTOML_HOME": str(home / "bentoml"),
        }
    )
    return env


def run_cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([MARKETLAKE, *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"marketlake {' '.join(args)} failed:\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def served(flow_env: dict[str, str]) -> Iterator[str]:
    run_cli(
        flow_env,
        "produce",
        "candles",
        "--simulate",
        "--symbols",
        "BTCUSDT,ETHUSDT",
        "--hours",
        "900",
        "--seed",
        "11",
    )
    first = json.loads(run_cli(flow_env, "ingest", "--json"))
    second = json.loads(run_cli(flow_env, "ingest", "--json"))
    assert first["rows"] == 1800 and first["rejects"] == 0
    assert second["records"] == 0  # landing again lands nothing twice
    out = run_cli(flow_env, "materialize", "--max-epochs", "2")
    assert "gold/features" in out and "ml/price_model" in out
    port = free_port()
    home = Path(flow_env["MARKETLAKE_HOME"])
    process = start_service(port, log_path=home / "serve.log", env=flow_env)
    try:
        wait_ready(f"http://127.0.0.1:{port}", process, timeout_s=180)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_service(process)


def test_predict_answers_from_the_champion(served: str) -> None:
    answer = httpx.post(f"{served}/predict", json={"symbol": "ethusdt", "horizon": 2}, timeout=30)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["symbol"] == "ETHUSDT" and body["horizon_hours"] == 2
    assert 0.0 < body["direction_probability"] < 1.0
    assert isinstance(body["predicted_return"], float)
    assert body["model_version"] == 1 and body["model_name"] == "marketlake-price"
    assert body["feature_time"].endswith("Z")


@pytest.mark.parametrize(
    ("request_body", "status", "named"),
    [
        ({"symbol": "DOGEUSDT", "horizon": 1}, 404, "DOGEUSDT"),  # symbol not in gold
        ({"symbol": "BTCUSDT", "horizon": 3}, 400, "horizon"),  # horizon the model lacks
        ({"symbol": "BTCUSDT", "horizon": "soon"}, 400, "horizon"),  # mistyped field
        ({"horizon": 1}, 400, "symbol"),  # missing field
        ({"symbol": "BTCUSDT", "horizn": 4}, 400, "horizn"),  # misspelled field
    ],
)
def test_bad_requests_get_a_4xx_naming_the_field(
    served: str, request_body: dict[str, object], status: int, named: str
) -> None:
    answer = httpx.post(f"{served}/predict", json=request_body, timeout=30)
    assert answer.status_code == status, answer.text
    assert named in answer.text


def test_served_predictions_are_logged_to_the_lake(served: str, flow_env: dict[str, str]) -> None:
    answer = httpx.post(f"{served}/predict", json={"symbol": "BTCUSDT", "horizon": 4}, timeout=30)
    assert answer.status_code == 200
    location = Lake(str(Path(flow_env["MARKETLAKE_HOME"]) / "lake")).location(
        GOLD_SERVED_PREDICTIONS
    )
    deadline = time.monotonic() + 30  # the service writes its log every 5 s
    while table_version(location) is None and time.monotonic() < deadline:
        time.sleep(0.5)
    logged = read_table(location).filter(pl.col("horizon_hours") == 4)
    assert logged.height >= 1
    assert logged["direction_probability"][-1] == answer.json()["direction_probability"]


def test_models_list_shows_the_champion(flow_env: dict[str, str], served: str) -> None:
    listing = json.loads(run_cli(flow_env, "models", "list", "--json"))
    assert [v["version"] for v in listing] == [1]
    assert "champion" in listing[0]["aliases"]
