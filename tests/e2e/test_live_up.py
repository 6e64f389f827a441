"""The live system on real components: after the demo, ``marketlake up --source simulate`` serves
predictions that follow the simulated hours with no manual step, through a broker restart, and
``marketlake down`` leaves no process behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import polars as pl
import pytest

from pipelines.broker import pid_alive
from pipelines.process_tree import processes_of_home
from pipelines.up_state import UpState, read_up_state
from warehouse.catalog import BRONZE_CANDLES
from warehouse.lake import Lake, read_table

pytestmark = pytest.mark.e2e

MARKETLAKE = str(Path(sys.executable).with_name("marketlake"))
SYMBOLS = "BTCUSDT,ETHUSDT"


@dataclass
class LiveRun:
    env: dict[str, str]
    home: Path
    process: subprocess.Popen[bytes]
    state: UpState
    history_end: datetime


def run_cli(env: dict[str, str], *args: str, timeout: float = 600) -> str:
    done = subprocess.run(
        [MARKETLAKE, *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"marketlake {' '.join(args)} failed:\n{done.stderr[-3000:]}"
    return done.stdout


def served_feature_time(api_url: str, symbol: str = "BTCUSDT") -> datetime | None:
    try:
        answer = httpx.post(f"{api_url}/predict", json={"symbol": symbol, "horizon": 1}, timeout=10)
    except httpx.HTTPError:
        return None
    if answer.status_code != 200:
        return None
    return datetime.fromisoformat(answer.json()["feature_time"].replace("Z", "+00:00"))


def wait_served_after(api_url: str, moment: datetime, timeout_s: float) -> datetime:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        served = served_feature_time(api_url)
        if served is not None and served > moment:
            return served
        time.sleep(1)
    raise AssertionError(f"the served feature_time did not pass {moment} within {timeout_s} s")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRun]:
    home = tmp_path_factory.mktemp("live-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "BENTOML_"))}
    for name in ("MARKETLAKE_KAFKA_BOOTSTRAP", "MLFLOW_TRACKING_URI", "MARKETLAKE_API_TOKEN"):
        env.pop(name, None)
    env.update({"MARKETLAKE_HOME": str(home), "MARKETLAKE_MODEL_REFRESH_S": "2"})
    run_cli(env, "demo", "--symbols", SYMBOLS, "--hours", "480", "--max-epochs", "1")
    lake = Lake(str(home / "lake"))
    history_end = read_table(lake.location(BRONZE_CANDLES))["open_time"].max()
    assert isinstance(history_end, datetime)
    log = (home / "up.out").open("ab")
    process = subprocess.Popen(
        [
            MARKETLAKE,
            "up",
            "--source",
            "simulate",
            "--speed",
            "3600",
            "--api-port",
            "0",
            "--dagster-port",
            "0",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 240
    state = None
    while time.monotonic() < deadline and process.poll() is None:
        state = read_up_state(home)
        if state is not None and state.running("up") and state.ready:
            break
        time.sleep(1)
    assert state is not None and process.poll() is None, (home / "up.out").read_text()[-3000:]
    try:
        yield LiveRun(env, home, process, state, history_end)
    finally:
        if process.poll() is None:
            run_cli(env, "down", timeout=240)
            process.wait(timeout=60)


def test_up_serves_predictions_that_follow_the_simulated_hours(live: LiveRun) -> None:
    status = json.loads(run_cli(live.env, "status", "--json"))
    assert status["up"] is True
    assert all(entry["running"] for entry in status["components"].values()), status
    assert {"broker", "lander", "dagster_daemon", "dagster_webserver", "api", "source"} <= set(
        status["components"]
    )
    assert status["champion"]["version"] == 1
    # new candles reach bronze, silver, gold, predictions and the served answer by themselves
    wait_served_after(live.state.api_url, live.history_end, timeout_s=180)


def broker_candles(home: Path) -> set[tuple[str, int]]:
    """(symbol, open time in ms) of the candles the running embedded broker holds now, up to the
    end offsets it reports (a lower bound on Tansu: the source keeps producing meanwhile)."""
    from kafka import TopicPartition

    from pipelines.broker import broker_status
    from pipelines.kafka_io import make_consumer

    info = broker_status(home / "broker")
    assert info is not None
    consumer = make_consumer(info.bootstrap)
    try:
        partitions = [TopicPartition("market.candles", p) for p in range(3)]
        consumer.assign(partitions)
        ends = consumer.end_offsets(partitions)
        consumer.seek_to_beginning(*partitions)
        held: set[tuple[str, int]] = set()
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            assert time.monotonic() < deadline, "could not read the broker's log within 60 s"
            for tp, records in consumer.poll(timeout_ms=1000).items():
                for record in records:
                    if record.offset < ends[tp]:
                        candle = json.loads(record.value)
                        held.add((candle["symbol"], int(candle["open_time"])))
        return held
    finally:
        consumer.close()


def test_a_broker_restart_loses_and_duplicates_nothing(live: LiveRun) -> None:
    before = wait_served_after(live.state.api_url, live.history_end, timeout_s=180)
    held = broker_candles(live.home)
    assert held, "the broker holds no candle: the source is not producing"
    run_cli(live.env, "broker", "stop")  # lands what it holds first; `up` starts a new one
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = read_up_state(live.home)
        if state is not None and state.pids.get("broker") != live.state.pids["broker"]:
            break
        time.sleep(0.5)
    assert state is not None and state.running("broker"), "up did not restart the broker"
    # the served answer moves on with hours produced to the new broker
    wait_served_after(live.state.api_url, before + timedelta(hours=30), timeout_s=180)
    bronze = read_table(Lake(str(live.home / "lake")).location(BRONZE_CANDLES))
    assert bronze.select("symbol", "open_time").is_duplicated().sum() == 0
    landed = {
        (symbol, int(open_time.timestamp() * 1000))
        for symbol, open_time in bronze.select("symbol", "open_time").iter_rows()
    }
    # everything the old broker held (acknowledged to the source) is in bronze
    assert held - landed == set()
    steps = (
        bronze.sort("open_time")
        .group_by("symbol")
        .agg(pl.col("open_time").diff().drop_nulls().dt.total_hours().unique().alias("steps"))
    )
    # every symbol's hours follow each other without a gap, across the restart
    assert all(s == [1] for s in steps["steps"].to_list()), steps


def test_down_stops_every_process(live: LiveRun) -> None:
    state = read_up_state(live.home)
    assert state is not None
    run_cli(live.env, "down", timeout=240)
    live.process.wait(timeout=60)
    left = {name: pid for name, pid in state.pids.items() if pid_alive(pid)}
    assert left == {}
    # nor any worker or child of theirs (BentoML workers leave their parent's process group)
    assert processes_of_home(str(live.home)) == []
    assert read_up_state(live.home) is None
    assert "nothing to stop" in run_cli(live.env, "down")
