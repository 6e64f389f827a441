"""Every topic through the same code: real files and recorded API answers -> Kafka -> bronze.

A private embedded broker (real topic names, no clash with other tests), the `marketlake` CLI
in-process, the recorded real API responses served on loopback, and the Dagster bronze assets
with their checks.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

import dagster as dg
import polars as pl
import pytest

from pipelines.cli import main
from pipelines.produce import paced
from pipelines.resources import KafkaResource, LakeResource
from warehouse.lake import Lake, read_table
from warehouse.topics import TOPICS


@pytest.fixture(scope="module")
def own_broker(
    tmp_path_factory: pytest.TempPathFactory,
    broker_at: Callable[[Path], AbstractContextManager[str]],
) -> Iterator[str]:
    with broker_at(tmp_path_factory.mktemp("topics-broker")) as bootstrap:
        yield bootstrap


@pytest.fixture
def env(own_broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    lake = tmp_path / "lake"
    monkeypatch.setenv("MARKETLAKE_KAFKA_BOOTSTRAP", own_broker)
    monkeypatch.setenv("MARKETLAKE_LAKE_URI", str(lake))
    return lake


class _Recorded(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:
        body = self.routes.get(urlsplit(self.path).path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body if body is not None else b'{"error":"no route"}')

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def recorded_api(
    monkeypatch: pytest.MonkeyPatch, shared_data: Callable[[str], Path]
) -> Iterator[None]:
    """The real recorded answers of CoinGecko, alternative.me and Binance, served on loopback."""
    samples = shared_data("api_samples")
    _Recorded.routes = {
        "/coins/markets": (
            samples / "coingecko_coins_markets_usd_top100_2025-11-02.json"
        ).read_bytes(),
        "/fng/": (samples / "alternative_me_fng_response_2026-09-25.json").read_bytes(),
        "/api/v3/klines": (samples / "binance_api_v3_klines_btcusdt_1d_2023-12.json").read_bytes(),
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorded)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    root = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("MARKETLAKE_COINGECKO_URL", root)
    monkeypatch.setenv("MARKETLAKE_ALTERNATIVE_ME_URL", root)
    monkeypatch.setenv("MARKETLAKE_BINANCE_URL", root)
    try:
        yield
    finally:
        server.shutdown()


def _ingest_json(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    capsys.readouterr()
    assert main(["ingest", "--all", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_every_kind_of_file_lands_in_its_bronze_table(
    env: Path,
    recorded_api: None,
    capsys: pytest.CaptureFixture[str],
    shared_data: Callable[[str], Path],
) -> None:
    files = {
        "candles": shared_data("crypto_1h_spot_7symbols_2023-12-01_2023-12-29.csv"),
        "posts": shared_data("reuters_bitcoin_headlines.csv"),
        "fear-greed": shared_data("fear_greed_index_daily_2018-02_2023-12.csv"),
        "tickers": shared_data("api_samples/coingecko_coins_markets_usd_top100_2025-11-02.json"),
    }
    for kind, path in files.items():
        assert main(["produce", kind, "--file", str(path)]) == 0
    assert main(["produce", "fear-greed", "--live"]) == 0  # today's value, from /fng/
    reports = {r["topic"]: r for r in _ingest_json(capsys)}
    assert reports["market.candles"]["rows"] == 4_872
    assert reports["social.posts"]["records"] == 2_260
    assert reports["market.fear_greed"]["rows"] > 2_157  # the file plus the recorded /fng/ answer
    assert reports["market.tickers"]["records"] >= 90
    lake = Lake(str(env))
    for spec in TOPICS.values():
        table = read_table(lake.location(spec.table))
        assert table.height == reports[spec.topic]["rows"]
        assert table.select(pl.col("kafka_offset").n_unique()).item() <= table.height
    # a second run finds nothing new: offsets live in the Delta log
    again = _ingest_json(capsys)
    assert all(r["records"] == 0 for r in again)


def test_backfill_pages_binance_history_into_candles(
    env: Path, recorded_api: None, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["backfill", "--source", "binance", "--symbols", "BTCUSDT", "--since", "2023-12-01"]
    assert main([*args, "--interval", "1d"]) == 0
    assert "produced 31 candles" in capsys.readouterr().out


def test_live_sources_without_network_fail_with_a_clear_error(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MARKETLAKE_ALTERNATIVE_ME_URL", "http://127.0.0.1:9")  # nothing listens
    assert main(["produce", "fear-greed", "--live"]) == 2  # a SourceError, retried, then named
    assert "http://127.0.0.1:9/fng/" in capsys.readouterr().err


def test_replay_speed_paces_by_event_time() -> None:
    waits: list[float] = []
    messages = [{"ts": t} for t in (3_600_000, 0, 7_200_000)]
    out = list(paced(messages, "ts", speed=3600.0, sleep=waits.append))
    assert [m["ts"] for m in out] == [0, 3_600_000, 7_200_000]  # sorted by event time
    # one market hour is one second at 3600x (the fake sleep does not advance the clock)
    assert [round(w, 1) for w in waits] == [1.0, 2.0]


def test_bronze_assets_report_offsets_and_checks(
    env: Path, own_broker: str, shared_data: Callable[[str], Path]
) -> None:
    from assets.bronze import bronze_candles, bronze_fear_greed, bronze_posts, bronze_tickers

    path = shared_data("fear_greed_index_daily_2018-02_2023-12.json")
    assert main(["produce", "fear-greed", "--file", str(path)]) == 0
    result = dg.materialize(
        [bronze_candles, bronze_tickers, bronze_posts, bronze_fear_greed],
        selection=[bronze_fear_greed],
        resources={
            "kafka": KafkaResource(bootstrap=own_broker),
            "lake": LakeResource(uri=str(env)),
        },
    )
    assert result.success
    [event] = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key.to_user_string() == "bronze/fear_greed"
    ]
    metadata = {k: v.value for k, v in event.metadata.items()}
    assert metadata["rows"] >= 2_157 and metadata["rejects"] == 0
    assert metadata["table_version"] >= 0 and metadata["lag"] == {"0": 0}
    assert set(metadata) >= {"start_offsets", "end_offsets", "bytes", "extra_fields"}
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"reject_rate": True, "freshness": True}
