"""Shared by the live-dashboard tests: a small lake with everything the page shows, a real
``bentoml serve`` on it behind a token, and the next candle to land while it runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import polars as pl

from pipelines.broker import free_port
from pipelines.demo import start_service, stop_service
from serving.champion import MODEL_REFRESH_ENV
from training.jobs import predict_from_lake
from training.sentiment import load_sentiment_model
from warehouse.catalog import SILVER_CANDLES, SILVER_FEAR_GREED
from warehouse.lake import Lake, overwrite, read_table
from warehouse.refresh import refresh_silver_posts

TOKEN = "dashboard-test-token-5f2c"
SMALL_LAKE_END = datetime(2023, 11, 14, 22, tzinfo=UTC)
"""The last simulated hour of the small lake (SMALL_LAKE_END_MS of tests/conftest.py)."""

POSTS = [
    ("p1", "BTC breaks out, bulls are back and buying strongly", ["BTC", "BTCUSDT"]),
    ("p2", "Ethereum network fees spike, traders worried about a crash", ["ETHUSDT"]),
    ("p3", "Bitcoin looks great, huge rally and strong support", ["BTCUSDT"]),
    ("p4", "ETH upgrade is a big success, very bullish", ["ETHUSDT"]),
]


def post_messages(end: datetime = SMALL_LAKE_END) -> list[dict[str, object]]:
    """A few ``social.posts`` messages in the last hours of the small lake."""
    return [
        {
            "post_id": post_id,
            "platform": "twitter",
            "author": f"trader{i}",
            "text": text,
            "ts": int((end - timedelta(hours=3 * (len(POSTS) - i))).timestamp() * 1000),
            "symbols": symbols,
            "likes": 3,
            "reposts": 1,
            "replies": 0,
            "followers": 100,
            "source": "test",
        }
        for i, (post_id, text, symbols) in enumerate(POSTS)
    ]


def populate(
    lake: Lake,
    tracking_uri: str,
    *,
    land: Callable[..., None],
    fear_greed: pl.DataFrame,
) -> None:
    """Add to a small lake what the page shows beside candles: batch predictions of the
    champion, scored posts and Fear & Greed."""
    predict_from_lake(lake, tracking_uri=tracking_uri)
    land(lake, "social.posts", post_messages(), kafka_timestamp_field="ts")
    refresh_silver_posts(lake, load_sentiment_model("lexicon"))  # type: ignore[arg-type]
    overwrite(lake.location(SILVER_FEAR_GREED), fear_greed)


def next_candle(lake: Lake, symbol: str) -> dict[str, object]:
    """A ``market.candles`` message for the hour after ``symbol``'s newest candle: a big green
    bar (close 3 % above the last close) that a chart cannot miss."""
    candles = read_table(lake.location(SILVER_CANDLES)).filter(pl.col("symbol") == symbol)
    last = candles.sort("ts").row(-1, named=True)
    ts: datetime = last["ts"]
    close = float(last["close"])
    return {
        "symbol": symbol,
        "interval": "1h",
        "open_time": int((ts + timedelta(hours=1)).timestamp() * 1000),
        "open": close,
        "high": close * 1.035,
        "low": close * 0.999,
        "close": close * 1.03,
        "volume": 123.0,
        "source": "test",
    }


@dataclass(frozen=True)
class Served:
    """A running ``bentoml serve``: its address, home, lake, registry and process."""

    url: str
    home: Path
    lake: Lake
    tracking_uri: str
    process: subprocess.Popen[bytes]

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    def log(self) -> str:
        return (self.home / "serve.log").read_text(errors="replace")


def service_environment(home: Path, tracking_uri: str, **extra: str) -> dict[str, str]:
    """The environment of a test service: its own home, registry, token and fast polling."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("MARKETLAKE_API_TOKEN", "MARKETLAKE_LAKE_URI", "MARKETLAKE_KAFKA_BOOTSTRAP")
    }
    env.update(
        {
            "MARKETLAKE_HOME": str(home),
            "MLFLOW_TRACKING_URI": tracking_uri,
            "BENTOML_HOME": str(home / "bentoml"),
            "MARKETLAKE_SENTIMENT_MODEL": "lexicon",
            "MARKETLAKE_API_TOKEN": TOKEN,
            MODEL_REFRESH_ENV: "1",
            "MARKETLAKE_WS_POLL_S": "0.5",
            **extra,
        }
    )
    return env


@contextmanager
def serve(
    home: Path, lake: Lake, tracking_uri: str, *, env: Mapping[str, str] | None = None
) -> Iterator[Served]:
    """``bentoml serve`` on ``home`` (the lake at ``<home>/lake``) until the block ends; waits
    until the champion is loaded (``/readyz``)."""
    port = free_port()
    environment = dict(env or service_environment(home, tracking_uri))
    process = start_service(port, log_path=home / "serve.log", env=environment)
    url = f"http://127.0.0.1:{port}"
    served = Served(url, home, lake, tracking_uri, process)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the service exited:\n{served.log()[-3000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"not ready in 120 s:\n{served.log()[-3000:]}"
            time.sleep(0.3)
        yield served
    finally:
        stop_service(process)


def copy_registry(tracking_uri: str, home: Path) -> str:
    """A private copy of a ``sqlite:///`` registry inside ``home``; returns its URI."""
    db = home / "mlflow.db"
    shutil.copyfile(tracking_uri.removeprefix("sqlite:///"), db)
    return f"sqlite:///{db}"
