"""Live latency: from a produced candle to the answer of ``/predict``, through the running system.

One run, on a fresh state folder (or ``--home``):

1. set-up: an embedded broker, ``--history`` simulated hours of ``--symbols`` landed, silver and
   gold materialized and a model trained and promoted (``--max-epochs``), the broker stopped;
2. ``marketlake up --source none`` on free ports (a new broker: landing continues on its log);
3. ``--candles`` new hours, one every ``--every`` seconds, each hour one bar per symbol produced
   straight to Kafka, continuing each symbol's price from the lake;
4. a poller notes, for every (symbol, hour), when it is first visible in ``bronze/candles``, in
   ``gold/features``, in ``gold/predictions`` and as the ``feature_time`` of ``POST /predict``;
5. ``marketlake down``, and a check that no process of the run is left.

Prints the p50/p95 latency of each stage from the produce time and the median time spent in each
hop (where the time goes); ``--json`` prints one object with ``produce_to_bronze_p50_s``,
``produce_to_bronze_p95_s``, ``produce_to_gold_p95_s``, ``produce_to_served_p50_s``,
``produce_to_served_p95_s``, ``candles`` and ``missed`` (candles never served), and more.

The dashboard side (``benchmarks/live_clients.py``): ``--ws-clients`` (default 200) WebSocket
clients stay connected to ``/ws`` throughout and note when each update reaches them
(``ws_clients``, ``ws_fanout_p95_s``: the spread between the first and the last client to get a
candle, target <= 1 s), and a headless Chromium with ``/dashboard`` open notes when each candle is
drawn (``produce_to_dashboard_p95_s``; skipped, with the reason, where chromium is missing).

    python benchmarks/live.py                     # 20 hours x 3 symbols, one hour every 15 s
    python benchmarks/live.py --candles 8 --every 20 --json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path

import bench_env  # noqa: F401  (first: import path and tool homes)
import httpx
import polars as pl
from live_clients import BrowserWatcher, WsFanout

from pipelines.broker import pid_alive
from pipelines.process_tree import processes_of_home
from pipelines.simulator import CandleStream
from pipelines.up_state import read_up_state
from warehouse.catalog import BRONZE_CANDLES, GOLD_FEATURES, GOLD_PREDICTIONS
from warehouse.lake import Lake, open_table
from warehouse.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STAGES = ("bronze", "gold", "predictions", "served")
TARGETS = {"produce_to_served_p95_s": 30.0, "missed": 0, "ws_fanout_p95_s": 1.0}


def _run(args: list[str], env: dict[str, str]) -> None:
    subprocess.run([str(BIN / "marketlake"), *args], env=env, cwd=ROOT, check=True)


def set_up(env: dict[str, str], symbols: list[str], hours: int, max_epochs: int) -> None:
    """History in the lake, silver and gold, a champion model; the broker stopped again."""
    _run(["broker", "start"], env)
    _run(
        ["produce", "candles", "--simulate", "--symbols", ",".join(symbols), "--hours", str(hours)],
        env,
    )
    _run(["ingest", "--topic", "market.candles"], env)
    _run(["materialize", "--max-epochs", str(max_epochs)], env)
    _run(["broker", "stop"], env)


def start_up(env: dict[str, str], home: Path, timeout_s: float = 300) -> subprocess.Popen[bytes]:
    """``marketlake up`` on free ports; returns once ``up.json`` names the API."""
    log = (home / "up.out").open("ab")
    process = subprocess.Popen(
        [str(BIN / "marketlake"), "up", "--api-port", "0", "--dagster-port", "0"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"marketlake up exited with {process.returncode}; see {log.name}")
        state = read_up_state(home)
        if state is not None and state.running("up") and state.ready:
            return process
        time.sleep(0.5)
    raise SystemExit(f"marketlake up was not ready within {timeout_s} s; see {log.name}")


class Poller:
    """Notes when each (symbol, hour) first shows up in each stage."""

    def __init__(self, lake: Lake, api_url: str, symbols: list[str], first_hour: datetime):
        self.lake = lake
        self.api_url = api_url
        self.symbols = symbols
        self.first_hour = first_hour
        self.seen: dict[str, dict[tuple[str, datetime], float]] = {s: {} for s in STAGES}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _note(self, stage: str, keys: list[tuple[str, datetime]], now: float) -> None:
        for key in keys:
            self.seen[stage].setdefault(key, now)

    def _table_keys(self, table: str, column: str) -> list[tuple[str, datetime]]:
        delta = open_table(self.lake.location(table))
        if delta is None:
            return []
        scan = pl.scan_pyarrow_dataset(delta.to_pyarrow_dataset())
        if table == BRONZE_CANDLES:
            scan = scan.filter(pl.col("event_date") >= pl.lit(self.first_hour.date()))
        frame = (
            scan.filter(pl.col(column) >= pl.lit(self.first_hour))
            .select("symbol", pl.col(column).alias("ts"))
            .unique()
            .collect()
        )
        return [(s, _utc(t)) for s, t in frame.iter_rows()]

    def _served_keys(self, client: httpx.Client) -> list[tuple[str, datetime]]:
        keys = []
        for symbol in self.symbols:
            answer = client.post(f"{self.api_url}/predict", json={"symbol": symbol, "horizon": 1})
            if answer.status_code == 200:
                served = datetime.fromisoformat(
                    answer.json()["feature_time"].replace("Z", "+00:00")
                )
                keys.append((symbol, _utc(served)))
        return keys

    def _loop(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                for stage, table, column in (
                    ("bronze", BRONZE_CANDLES, "open_time"),
                    ("gold", GOLD_FEATURES, "ts"),
                    ("predictions", GOLD_PREDICTIONS, "ts"),
                ):
                    try:
                        keys = self._table_keys(table, column)
                    except Exception:  # a table being rewritten: look again next round
                        continue
                    self._note(stage, keys, time.time())
                with contextlib.suppress(httpx.HTTPError):
                    self._note("served", self._served_keys(client), time.time())
                self.stop.wait(0.25)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def served_at(poller: Poller, key: tuple[str, datetime]) -> float | None:
    """When ``key`` or a later hour of the same symbol was first served (the answer moved past)."""
    times = [t for (s, h), t in poller.seen["served"].items() if s == key[0] and h >= key[1]]
    return min(times) if times else None


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--symbols", default="BTCUSDT,ETHUSDT,SOLUSDT")
    parser.add_argument("--history", type=int, default=24 * 40, help="hours landed at set-up")
    parser.add_argument("--candles", type=int, default=20, help="new hours to stream")
    parser.add_argument("--every", type=float, default=15.0, help="seconds between new hours")
    parser.add_argument("--settle", type=float, default=90.0, help="wait after the last hour, s")
    parser.add_argument("--max-epochs", type=int, default=1)
    parser.add_argument("--home", help="state folder (default: a fresh temporary one)")
    parser.add_argument("--ws-clients", type=int, default=200, help="WebSocket clients on /ws")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium dashboard")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    home = Path(args.home or tempfile.mkdtemp(prefix="marketlake-live-bench-")).resolve()
    env = {**os.environ, "MARKETLAKE_HOME": str(home)}
    for name in (
        "DAGSTER_HOME",
        "BENTOML_HOME",
        "MARKETLAKE_KAFKA_BOOTSTRAP",
        "MLFLOW_TRACKING_URI",
    ):
        env.pop(name, None)
    os.environ.update({"MARKETLAKE_HOME": str(home)})
    settings = load_settings(env)
    lake = Lake(settings.lake_uri, settings.storage_options)

    began = time.monotonic()
    set_up(env, symbols, args.history, args.max_epochs)
    setup_s = time.monotonic() - began
    up = start_up(env, home)
    state = read_up_state(home)
    assert state is not None
    pids = dict(state.pids)
    from pipelines.broker import resolve_bootstrap
    from pipelines.kafka_io import make_producer, produce_messages
    from pipelines.live_sources import lake_last_bars

    stream = CandleStream(symbols, lake_last_bars(lake), seed=99)
    first_hour = datetime.fromtimestamp(stream.next_open_ms / 1000, UTC)
    poller = Poller(lake, state.api_url, symbols, first_hour)
    poller.thread.start()
    ws_url = state.api_url.replace("http://", "ws://") + "/ws"
    fanout = WsFanout(ws_url, args.ws_clients, first_hour)
    fanout.thread.start()
    browser_skip = "--no-browser" if args.no_browser else BrowserWatcher.available()
    browser = None if browser_skip else BrowserWatcher(f"{state.api_url}/dashboard", symbols)
    if browser is not None:
        browser.thread.start()
        browser.ready.wait(120)
    deadline = time.monotonic() + 60
    while fanout.connected < args.ws_clients and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(5)  # the poller sees the served state before the first hour
    produced: dict[tuple[str, datetime], float] = {}
    producer = make_producer(resolve_bootstrap(settings))
    try:
        for _ in range(args.candles):
            bars = stream.next_hour()
            produce_messages(producer, "market.candles", "symbol", bars)
            now = time.time()
            for bar in bars:
                hour = datetime.fromtimestamp(int(bar["open_time"]) / 1000, UTC)  # type: ignore[call-overload]
                produced[(str(bar["symbol"]), hour)] = now
            time.sleep(args.every)
        deadline = time.monotonic() + args.settle
        while time.monotonic() < deadline:
            if all(served_at(poller, key) is not None for key in produced):
                break
            time.sleep(1)
    finally:
        producer.close()
        poller.stop.set()
        poller.thread.join()
        fanout.stop.set()
        fanout.thread.join(timeout=30)
        if browser is not None:
            browser.stop.set()
            browser.thread.join(timeout=30)
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(timeout=180)
        except subprocess.TimeoutExpired:
            _run(["down"], env)
    left = sorted(name for name, pid in pids.items() if pid_alive(pid))
    left += [f"pid {pid}" for pid in processes_of_home(str(home))]  # workers and children too

    latencies: dict[str, list[float]] = {stage: [] for stage in STAGES}
    missed = 0
    for key, t0 in produced.items():
        for stage in STAGES[:3]:
            if key in poller.seen[stage]:
                latencies[stage].append(poller.seen[stage][key] - t0)
        served = served_at(poller, key)
        if served is None:
            missed += 1
        else:
            latencies["served"].append(served - t0)
    result = {
        "candles": len(produced),
        "hours": args.candles,
        "symbols": len(symbols),
        "every_s": args.every,
        "missed": missed,
        "setup_s": round(setup_s, 1),
        "processes_left": left,
    }
    for stage in STAGES:
        name = "produce_to_served" if stage == "served" else f"produce_to_{stage}"
        result[f"{name}_p50_s"] = percentile(latencies[stage], 0.5)
        result[f"{name}_p95_s"] = percentile(latencies[stage], 0.95)
        result[f"{name}_max_s"] = percentile(latencies[stage], 1.0)
    keys = list(produced)
    dashboard = [
        drawn - produced[k]
        for k in keys
        if browser is not None and (drawn := browser.drawn_at(k)) is not None
    ]
    ws_first = [min(fanout.seen[k]) - produced[k] for k in keys if k in fanout.seen]
    spreads = fanout.fanout_s(keys)
    result.update(
        {
            "produce_to_dashboard_p50_s": percentile(dashboard, 0.5),
            "produce_to_dashboard_p95_s": percentile(dashboard, 0.95),
            "dashboard_candles_drawn": len(dashboard),
            "dashboard_skipped": browser_skip,
            "dashboard_error": None if browser is None else browser.error,
            "produce_to_ws_p95_s": percentile(ws_first, 0.95),
            "ws_clients": fanout.connected,
            "ws_client_errors": len(fanout.errors),
            "ws_updates_to_all_clients": len(spreads),
            "ws_fanout_p95_s": percentile(spreads, 0.95),
            "ws_fanout_max_s": percentile(spreads, 1.0),
        }
    )
    medians = {s: statistics.median(v) if v else None for s, v in latencies.items()}
    hops = {}
    previous = 0.0
    for stage in STAGES:
        if medians[stage] is not None:
            hops[f"hop_{stage}_median_s"] = round(float(medians[stage]) - previous, 2)  # type: ignore[arg-type]
            previous = float(medians[stage])  # type: ignore[arg-type]
    result.update(hops)
    result["targets"] = TARGETS
    result["meets_targets"] = (
        missed == 0
        and result["ws_fanout_p95_s"] is not None
        and float(result["ws_fanout_p95_s"]) <= TARGETS["ws_fanout_p95_s"]  # type: ignore[arg-type]
        and result["produce_to_served_p95_s"] is not None
        and float(result["produce_to_served_p95_s"]) <= TARGETS["produce_to_served_p95_s"]  # type: ignore[arg-type]
    )
    result["home"] = str(home)
    result["date"] = date.today().isoformat()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:>32}: {value}")
    return 0 if not left else 1


if __name__ == "__main__":
    sys.exit(main())
