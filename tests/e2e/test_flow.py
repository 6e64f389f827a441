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
TOKEN = "e2e-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


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
    serve_env = {**flow_env, "MARKETLAKE_API_TOKEN": TOKEN}
    process = start_service(port, log_path=home / "serve.log", env=serve_env)
    try:
        wait_ready(f"http://127.0.0.1:{port}", process, timeout_s=180)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_service(process)


def test_predict_answers_from_the_champion(served: str) -> None:
    answer = httpx.post(
        f"{served}/predict", json={"symbol": "ethusdt", "horizon": 2}, headers=AUTH, timeout=30
    )
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
        ({"symbol": "  ", "horizon": 1}, 400, "symbol"),  # blank symbol
        ({"symbol": "BTCUSDT", "horizon": True}, 400, "horizon"),  # a boolean is no horizon
    ],
)
def test_bad_requests_get_a_4xx_naming_the_field(
    served: str, request_body: dict[str, object], status: int, named: str
) -> None:
    answer = httpx.post(f"{served}/predict", json=request_body, headers=AUTH, timeout=30)
    assert answer.status_code == status, answer.text
    assert named in answer.text


def test_a_refused_request_is_logged_as_one_line(served: str, flow_env: dict[str, str]) -> None:
    body = {"symbol": "NOSUCHCOINUSDT", "horizon": 1}
    answer = httpx.post(f"{served}/predict", json=body, headers=AUTH, timeout=30)
    assert answer.status_code == 404
    log = Path(flow_env["MARKETLAKE_HOME"]) / "serve.log"
    deadline = time.monotonic() + 30
    while "NOSUCHCOINUSDT" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    lines = [line for line in log.read_text().splitlines() if "NOSUCHCOINUSDT" in line]
    assert any("404 symbol: unknown symbol 'NOSUCHCOINUSDT'" in line for line in lines), lines
    assert "raise NotFound" not in log.read_text()  # no traceback for a refused request


def test_served_predictions_are_logged_to_the_lake(served: str, flow_env: dict[str, str]) -> None:
    answer = httpx.post(
        f"{served}/predict", json={"symbol": "BTCUSDT", "horizon": 4}, headers=AUTH, timeout=30
    )
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


def test_signals_follow_the_thresholds(served: str) -> None:
    body = {"horizon": 1, "long_threshold": 0.5, "short_threshold": 0.4999}
    answer = httpx.post(f"{served}/signals", json=body, headers=AUTH, timeout=30)
    assert answer.status_code == 200, answer.text
    signals = answer.json()["signals"]
    assert [s["symbol"] for s in signals] == ["BTCUSDT", "ETHUSDT"]
    for signal in signals:
        p = signal["direction_probability"]
        assert signal["signal"] == ("long" if p >= 0.5 else "short" if p <= 0.4999 else "flat")


def test_sentiment_scores_each_text(served: str) -> None:
    texts = ["Bitcoin soars to a record high", "Exchange hacked, prices crash"]
    answer = httpx.post(f"{served}/sentiment", json={"texts": texts}, headers=AUTH, timeout=30)
    assert answer.status_code == 200, answer.text
    assert [r["label"] for r in answer.json()["results"]] == ["positive", "negative"]


def test_market_shows_the_latest_prices(served: str) -> None:
    answer = httpx.post(f"{served}/market", json={}, headers=AUTH, timeout=30)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [p["symbol"] for p in body["prices"]] == ["BTCUSDT", "ETHUSDT"]
    assert body["summary"]["symbols"] == 2 and body["fear_greed"] is None


def test_routes_need_the_token_but_metrics_do_not(served: str) -> None:
    refused = httpx.post(f"{served}/market", json={}, timeout=30)
    assert refused.status_code == 401 and "bearer token" in refused.json()["error"]
    assert httpx.get(f"{served}/metrics", timeout=30).status_code == 200
    # the OpenAPI document, the Swagger page and other methods or spellings are closed too
    for method, path in [
        ("GET", "/docs.json"),
        ("GET", "/"),
        ("HEAD", "/predict"),
        ("POST", "/predict/"),
        ("GET", "/livez/../market"),
    ]:
        answer = httpx.request(method, f"{served}{path}", timeout=30)
        assert answer.status_code == 401, (method, path, answer.status_code)


def test_dashboard_page_needs_the_token_and_shows_market_and_signals(served: str) -> None:
    page = httpx.get(f"{served}/dashboard", headers=AUTH, timeout=30)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert httpx.get(f"{served}/dashboard", timeout=30).status_code == 401
    snapshot = httpx.get(f"{served}/dashboard/snapshot.json", headers=AUTH, timeout=30)
    assert snapshot.status_code == 200, snapshot.text
    assert snapshot.json()["type"] == "snapshot"
    data = snapshot.json()["payload"]
    assert {s["symbol"] for s in data["prices"]["symbols"]} == {"BTCUSDT", "ETHUSDT"}
    assert all(s["candles"] for s in data["prices"]["symbols"])  # real candles from the lake
    board = data["predictions"]
    assert board["model_name"] == "marketlake-price" and board["model_version"] == 1
    assert {s["symbol"] for s in board["symbols"]} == {"BTCUSDT", "ETHUSDT"}
    assert httpx.get(f"{served}/dashboard/snapshot.json", timeout=30).status_code == 401
