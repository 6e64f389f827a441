"""``marketlake demo``: the whole flow on embedded defaults, ending in a served prediction.

broker → produce candles → ingest (bronze) → materialize silver and gold → train and register
→ ``bentoml serve`` → ``POST /predict`` → print the answer and where to look next → stop what
the demo started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from pipelines.broker import broker_status, free_port, start_broker, stop_broker
from pipelines.materialize import materialize_assets
from pipelines.produce import ingest_topics, produce_candle_file, produce_to_topic
from pipelines.simulator import HOUR_MS, simulate_candles
from pipelines.simulator_text import companions
from warehouse.errors import MarketlakeError
from warehouse.settings import Settings
from warehouse.topics import CANDLES, FEAR_GREED, POSTS

REPO_ROOT = Path(__file__).resolve().parent.parent

DEMO_ROOM_DAYS = 30
"""The simulated history ends this many days before now, so that `marketlake up --source
simulate --speed 3600` has 30 days (12 minutes) to fast-forward before it reaches the present
and goes on at market speed (no bar is produced before it has closed)."""


@dataclass(frozen=True)
class DemoOptions:
    """What the demo produces and how long it trains."""

    symbols: list[str] = field(default_factory=lambda: ["BTCUSDT", "ETHUSDT", "SOLUSDT"])
    hours: int = 24 * 120
    file: str | None = None
    max_epochs: int = 3
    seed: int = 7
    ends_days_ago: int = DEMO_ROOM_DAYS


def _step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def start_service(
    port: int, *, log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``bentoml serve`` for the marketlake service on ``port`` (loopback)."""
    bentoml = Path(sys.executable).with_name("bentoml")
    log = log_path.open("ab")
    return subprocess.Popen(
        [
            str(bentoml),
            "serve",
            "serving.service:MarketlakeService",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--working-dir",
            str(REPO_ROOT),
        ],
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )


def wait_ready(base_url: str, process: subprocess.Popen[bytes], *, timeout_s: float = 120) -> None:
    """Wait until the service answers ``/readyz``; fail early if the process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise MarketlakeError(f"the service exited with code {process.returncode}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise MarketlakeError(f"the service at {base_url} was not ready within {timeout_s} s")


def stop_service(process: subprocess.Popen[bytes]) -> None:
    """Stop the service and every worker it started."""
    if process.poll() is None:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


def run_demo(settings: Settings, options: DemoOptions) -> int:
    """Run the whole flow; return 0 when a prediction came back from the served model."""
    started_broker = False
    service: subprocess.Popen[bytes] | None = None
    begin = time.monotonic()
    try:
        _step("starting the embedded Kafka broker")
        if settings.kafka_bootstrap is None and broker_status(settings.broker_dir) is None:
            info = start_broker(settings.broker_dir)
            started_broker = True
            print(f"broker at {info.bootstrap}")
        if options.file:
            _step(f"replaying {options.file} into market.candles")
            sent = produce_candle_file(
                settings,
                Path(options.file),
                symbol=options.symbols[0] if len(options.symbols) == 1 else None,
            )
        else:
            _step(
                f"simulating {options.hours} hourly candles of {', '.join(options.symbols)}, "
                "with posts and a daily Fear & Greed value"
            )
            end_ms = (int(time.time() * 1000) // HOUR_MS - 1 - 24 * options.ends_days_ago) * HOUR_MS
            candles = list(
                simulate_candles(
                    options.symbols, hours=options.hours, seed=options.seed, end_ms=end_ms
                )
            )
            posts, fear_greed = companions(candles, seed=options.seed)
            sent = produce_to_topic(settings, CANDLES, candles, total=len(candles))
            sent += produce_to_topic(settings, POSTS, posts, total=len(posts))
            sent += produce_to_topic(settings, FEAR_GREED, fear_greed, total=len(fear_greed))
        print(f"produced {sent} messages")

        _step("landing every topic into bronze (exactly once)")
        for report in ingest_topics(settings, [CANDLES, POSTS, FEAR_GREED]):
            print(
                f"{report.topic}: landed {report.rows} rows, {report.rejects} rejects, "
                f"table version {report.table_version}"
            )

        _step("materializing silver, gold and the price model with Dagster")
        for line in materialize_assets(settings, max_epochs=options.max_epochs):
            print(line)

        _step("serving the champion model with BentoML")
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        log_path = settings.home / "serve.log"
        service = start_service(port, log_path=log_path)
        wait_ready(base_url, service)
        headers = {"Authorization": f"Bearer {settings.api_token}"} if settings.api_token else {}
        for route, request in [
            ("/predict", {"symbol": options.symbols[0], "horizon": 1}),
            ("/signals", {"horizon": 1}),
        ]:
            answer = httpx.post(f"{base_url}{route}", json=request, headers=headers, timeout=30)
            answer.raise_for_status()
            print(f"POST {base_url}{route} {json.dumps(request)}")
            print(json.dumps(answer.json(), indent=2))
    finally:
        if service is not None:
            stop_service(service)
        if started_broker:
            stop_broker(settings.broker_dir)
    minutes = (time.monotonic() - begin) / 60
    home = settings.home
    print(
        f"\nDemo finished in {minutes:.1f} min. State lives in {home}. Look around:\n"
        f"  Run it live: .venv/bin/marketlake up --source simulate --speed 3600\n"
        f"               (broker, lander, Dagster with automation, API; `marketlake down` stops)\n"
        f"  Dagster UI:  .venv/bin/marketlake dagster            (http://127.0.0.1:3001)\n"
        f"  MLflow UI:   .venv/bin/marketlake mlflow              (http://127.0.0.1:5000)\n"
        f'  DuckDB:      .venv/bin/marketlake sql "select symbol, count(*) as hours, '
        f'max(ts) as latest from gold.features group by symbol"\n'
        f"  Serve:       .venv/bin/marketlake serve   then   curl -s -X POST "
        f"localhost:3000/predict -H 'content-type: application/json' "
        f'-d \'{{"symbol": "{options.symbols[0]}", "horizon": 1}}\''
    )
    return 0
