"""A real ``bentoml serve`` follows the registry: it starts with no champion (not ready, 503 on
``/predict``), serves the first champion, a promotion and a rollback, each within 30 s and
without a restart."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from mlflow.tracking import MlflowClient

from pipelines.broker import free_port
from pipelines.demo import start_service, stop_service
from serving.champion import MODEL_REFRESH_ENV
from training.config import MODEL_NAME
from training.registry import promote, rollback
from warehouse.lake import Lake

pytestmark = pytest.mark.e2e

FOLLOW_WITHIN_S = 30.0
"""How soon a registry change must be served (the requirement)."""


@dataclass(frozen=True)
class Served:
    url: str
    home: Path
    tracking_uri: str
    process: subprocess.Popen[bytes]


def _get(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.HTTPError:
        return None


@pytest.fixture
def served(small_lake: Callable[..., Lake], tmp_path: Path) -> Iterator[Served]:
    """``bentoml serve`` on a small lake and an empty registry, checking the champion every 1 s."""
    home = tmp_path / "home"
    small_lake(hours=80, seed=7, root=home)  # the lake at <home>/lake
    tracking_uri = f"sqlite:///{home / 'mlflow.db'}"
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("MARKETLAKE_API_TOKEN", "MARKETLAKE_LAKE_URI")
    }
    env.update(
        {
            "MARKETLAKE_HOME": str(home),
            "MLFLOW_TRACKING_URI": tracking_uri,
            "BENTOML_HOME": str(home / "bentoml"),
            "MARKETLAKE_SENTIMENT_MODEL": "lexicon",
            MODEL_REFRESH_ENV: "1",
        }
    )
    port = free_port()
    process = start_service(port, log_path=home / "serve.log", env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while _get(f"{url}/livez") != 200:
            if process.poll() is not None:
                log = (home / "serve.log").read_text(errors="replace")
                pytest.fail(f"the service exited with code {process.returncode}:\n{log[-3000:]}")
            assert time.monotonic() < deadline, "the service did not come up within 120 s"
            time.sleep(0.3)
        yield Served(url, home, tracking_uri, process)
    finally:
        stop_service(process)


def wait_for_version(served: Served, version: int) -> float:
    """Seconds until ``/predict`` answers from ``version``; fails after FOLLOW_WITHIN_S."""
    started = time.monotonic()
    seen: object = None
    while time.monotonic() - started < FOLLOW_WITHIN_S:
        answer = httpx.post(f"{served.url}/predict", json={"symbol": "BTCUSDT"}, timeout=10)
        seen = (answer.status_code, answer.text[:300])
        if answer.status_code == 200 and answer.json()["model_version"] == version:
            return time.monotonic() - started
        time.sleep(0.25)
    pytest.fail(f"version {version} not served within {FOLLOW_WITHIN_S} s; last answer: {seen}")


def test_the_service_follows_the_champion_without_a_restart(
    served: Served, train_small: Callable[..., int]
) -> None:
    # no champion: alive, not ready; predictions say how to get one; the rest works
    assert _get(f"{served.url}/readyz") == 503
    answer = httpx.post(f"{served.url}/predict", json={"symbol": "BTCUSDT"}, timeout=10)
    assert answer.status_code == 503
    assert "no champion model is registered yet" in answer.json()["error"]
    assert "marketlake train" in answer.json()["error"]
    assert answer.headers["retry-after"] == "1"  # one champion check
    assert httpx.post(f"{served.url}/signals", json={}, timeout=10).status_code == 503
    assert httpx.post(f"{served.url}/market", json={}, timeout=10).status_code == 200
    texts = {"texts": ["BTC rallies"]}
    assert httpx.post(f"{served.url}/sentiment", json=texts, timeout=10).status_code == 200
    assert httpx.get(f"{served.url}/dashboard", timeout=10).status_code == 200
    snapshot = httpx.get(f"{served.url}/dashboard/snapshot.json", timeout=10).json()["payload"]
    assert "no champion model is registered yet" in snapshot["predictions"]["note"]
    assert "waiting for a champion model" in (served.home / "serve.log").read_text()

    # the first registered version becomes the champion
    artifacts = served.home / "mlartifacts"
    assert train_small(served.tracking_uri, artifacts) == 1
    wait_for_version(served, 1)
    assert _get(f"{served.url}/readyz") == 200

    client = MlflowClient(served.tracking_uri, registry_uri=served.tracking_uri)
    assert train_small(served.tracking_uri, artifacts, seed=1) == 2
    promote(client, MODEL_NAME, 2)
    wait_for_version(served, 2)
    signals = httpx.post(f"{served.url}/signals", json={}, timeout=10)
    assert signals.status_code == 200 and signals.json()["model_version"] == 2

    assert rollback(client, MODEL_NAME) == 1
    wait_for_version(served, 1)
    assert served.process.poll() is None  # the same process all along
