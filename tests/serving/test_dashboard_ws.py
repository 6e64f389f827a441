"""``/ws`` on a real ``bentoml serve``, with a real WebSocket client (``websockets``): the token
(header, ``?token=``, 1008 without), the snapshot, a candle landed while connected pushed as a
``price_update`` and a new ``prediction_update``, a stalled client that blocks neither the others
nor the API, and no token in the service's log."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import polars as pl
import pytest
from dashboard_support import TOKEN, Served, copy_registry, next_candle, populate, serve
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from warehouse.catalog import SILVER_CANDLES
from warehouse.lake import Lake, read_table

pytestmark = pytest.mark.e2e

PUSHED_WITHIN_S = 20.0


@pytest.fixture(scope="module")
def served(
    small_lake: Callable[..., Lake],
    tmp_path_factory: pytest.TempPathFactory,
    model_registry: str,
    land: Callable[..., None],
    fear_greed_days: pl.DataFrame,
) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("ws-home")
    lake = small_lake(hours=150, seed=11, root=home)
    tracking_uri = copy_registry(model_registry, home)
    populate(lake, tracking_uri, land=land, fear_greed=fear_greed_days)
    with serve(home, lake, tracking_uri) as running:
        yield running


def _receive(socket: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(socket.recv(timeout=timeout))
    return message


def _until(socket: ClientConnection, found: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + PUSHED_WITHIN_S
    seen = []
    while time.monotonic() < deadline:
        message = _receive(socket, timeout=max(0.1, deadline - time.monotonic()))
        seen.append(message["type"])
        if found(message):
            return message
    pytest.fail(f"not pushed within {PUSHED_WITHIN_S} s; received {seen}")


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        ("", {}),  # no token
        ("?token=wrong", {}),  # wrong token in the URL
        ("", {"Authorization": "Bearer wrong"}),  # wrong header
    ],
)
def test_without_the_token_the_socket_is_closed_with_1008(
    served: Served, query: str, headers: dict[str, str]
) -> None:
    with (
        connect(served.ws_url + query, additional_headers=headers) as socket,
        pytest.raises(ConnectionClosed) as closed,
    ):
        socket.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


@pytest.mark.parametrize("how", ["header", "query"])
def test_the_snapshot_holds_the_lake(served: Served, how: str) -> None:
    url = served.ws_url + (f"?token={TOKEN}" if how == "query" else "")
    headers = {"Authorization": f"Bearer {TOKEN}"} if how == "header" else {}
    with connect(url, additional_headers=headers, max_size=2**24) as socket:
        first = _receive(socket)
    assert first["type"] == "snapshot"
    payload = first["payload"]
    candles = read_table(served.lake.location(SILVER_CANDLES))
    for chart in payload["prices"]["symbols"]:
        last = candles.filter(pl.col("symbol") == chart["symbol"]).sort("ts").row(-1, named=True)
        assert chart["candles"][-1] == {
            "time": int(last["ts"].timestamp()),
            **{k: last[k] for k in ("open", "high", "low", "close", "volume")},
        }
    assert payload["predictions"]["model_version"] == 1
    assert len(payload["sentiment"]["posts"]) == 4
    assert payload["portfolio"]["note"] == "no paper trades yet"
    assert payload["status"]["champion_version"] == 1


def test_a_landed_candle_is_pushed_with_a_new_prediction(
    served: Served, land_candles: Callable[..., Lake]
) -> None:
    url = f"{served.ws_url}?token={TOKEN}"
    with (
        connect(url, max_size=2**24) as watcher,
        connect(url, max_size=2**24, max_queue=1) as stalled,
    ):
        assert _receive(watcher)["type"] == "snapshot"
        stalled.recv(timeout=10)  # the snapshot, then this client stops reading
        candle = next_candle(served.lake, "ETHUSDT")
        new_time = int(candle["open_time"]) // 1000  # type: ignore[call-overload]
        started = time.monotonic()
        land_candles(served.lake, [candle])

        def has_bar(message: dict[str, Any]) -> bool:
            return message["type"] == "price_update" and any(
                b["time"] == new_time and b["close"] == candle["close"]
                for chart in message["payload"]["symbols"]
                for b in chart["candles"]
            )

        _until(watcher, has_bar)
        pushed_s = time.monotonic() - started
        prediction = _until(
            watcher,
            lambda m: (
                m["type"] == "prediction_update"
                and any(
                    s["symbol"] == "ETHUSDT" and s["feature_time"] == new_time
                    for s in m["payload"]["symbols"]
                )
            ),
        )
        assert prediction["payload"]["model_version"] == 1
        # the API answers while a client is stalled
        answer = httpx.post(
            f"{served.url}/market",
            json={"symbols": ["ETHUSDT"]},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        assert answer.status_code == 200 and answer.json()["prices"][0]["close"] == candle["close"]
    print(f"candle landed -> price_update on the socket in {pushed_s:.2f} s")
    assert pushed_s < PUSHED_WITHIN_S


def test_the_token_never_reaches_the_log(served: Served) -> None:
    httpx.get(f"{served.url}/dashboard?token={TOKEN}", timeout=10).raise_for_status()
    with connect(f"{served.ws_url}?token={TOKEN}", max_size=2**24) as socket:
        socket.recv(timeout=10)
    time.sleep(0.5)  # the access log line of the closed socket
    log = served.log()
    assert "path=/ws" in log and "path=/dashboard" in log  # the access log is on
    assert TOKEN not in log


def test_the_page_and_its_files_are_served(served: Served) -> None:
    page = httpx.get(f"{served.url}/dashboard?token={TOKEN}", timeout=10)
    assert page.status_code == 200 and "/dashboard/static/js/main.js" in page.text
    assert httpx.get(f"{served.url}/dashboard", timeout=10).status_code == 401
    vendor = (
        "/dashboard/static/vendor/lightweight-charts/lightweight-charts.standalone.production.mjs"
    )
    script = httpx.get(f"{served.url}{vendor}", timeout=10)
    assert script.status_code == 200 and "Lightweight Charts™ v5.2.1" in script.text
