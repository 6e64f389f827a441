"""``POST /portfolio``: the paper-trading ledger's figures from the stored tables, through the
plain module and through a real ``bentoml serve``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import polars as pl
import pytest
from bentoml.exceptions import NotFound, ServiceUnavailable
from dashboard_support import TOKEN, service_environment
from pydantic import ValidationError

from pipelines.broker import free_port
from pipelines.demo import start_service, stop_service
from serving.portfolio import PortfolioRequest, PortfolioService
from serving.predictions import RequestError
from serving.service import _http_error
from training.paper_ledger import paper_portfolio_from_lake
from training.paper_trading import PaperTradingConfig
from warehouse.catalog import GOLD_PREDICTIONS, SILVER_CANDLES
from warehouse.errors import DataError
from warehouse.lake import Lake, overwrite

T0 = datetime(2024, 1, 1, tzinfo=UTC)
K = 1 - 0.0015
AAA = K * 105 / 102 * K**2 * (1 + 5 / 105)
"""AAAUSDT: flat, long from 102 to 105, then short from 105 to 100 (a flip: 2 units)."""
BBB = K**2 * 1.1
"""BBBUSDT: long from 10 to 11, then flat (the sell pays the fee on K * 1.1)."""


def hour(i: int) -> datetime:
    return T0 + timedelta(hours=i)


def build_ledger(lake: Lake) -> None:
    """Two symbols of 4 hourly bars and the ledger that follows their predictions."""
    bars = {
        "AAAUSDT": [(100, 100), (100, 102), (102, 105), (105, 100)],
        "BBBUSDT": [(10, 10), (10, 11), (11, 12), (12, 12)],
    }
    probs = {"AAAUSDT": [0.5, 0.6, 0.4], "BBBUSDT": [0.6, 0.5, 0.5]}
    candles = pl.DataFrame(
        [
            {"symbol": s, "ts": hour(h), "open": float(o), "close": float(c)}
            for s, rows in bars.items()
            for h, (o, c) in enumerate(rows)
        ]
    )
    predictions = pl.DataFrame(
        [
            {
                "symbol": s,
                "ts": hour(h),
                "horizon_hours": 1,
                "predicted_return": 0.0,
                "direction_probability": p,
                "model_name": "marketlake-price",
                "model_version": 3,
                "predicted_at": hour(9),
            }
            for s, ps in probs.items()
            for h, p in enumerate(ps)
        ],
        schema_overrides={"horizon_hours": pl.Int32, "model_version": pl.Int64},
    )
    overwrite(lake.location(SILVER_CANDLES), candles)
    overwrite(lake.location(GOLD_PREDICTIONS), predictions)
    assert paper_portfolio_from_lake(lake).mode == "rebuild"


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    lake = Lake(str(tmp_path / "lake"))
    build_ledger(lake)
    return lake


def test_equity_against_buy_and_hold_positions_and_fills(lake: Lake) -> None:
    answer = PortfolioService(lake).portfolio(PortfolioRequest())
    book = answer.portfolio
    # equal weights: the two books started together, so the portfolio is their mean
    assert book.symbols == 2
    assert book.equity == pytest.approx((AAA + BBB) / 2)
    assert book.buy_and_hold_equity == pytest.approx((K * 1.0 + K * 1.2) / 2)
    assert book.total_return == pytest.approx(book.equity - 1)
    assert book.excess_return == pytest.approx(book.equity - book.buy_and_hold_equity)
    assert (book.since, book.as_of) == (hour(1), hour(3))
    assert book.max_drawdown == pytest.approx(min(0.0, book.drawdown))
    assert answer.rule == PaperTradingConfig()
    aaa, bbb = answer.symbols
    assert (aaa.symbol, aaa.signal, aaa.trades, aaa.price) == ("AAAUSDT", "short", 2, 100.0)
    assert (bbb.symbol, bbb.signal, bbb.trades) == ("BBBUSDT", "flat", 2)
    assert (aaa.equity, bbb.equity) == (pytest.approx(AAA), pytest.approx(BBB))
    assert bbb.fees == pytest.approx((1 - K) + K * 1.1 * (1 - K))
    (short,) = answer.open_positions
    assert (short.symbol, short.side, short.entry_ts, short.entry_price) == (
        "AAAUSDT",
        "short",
        hour(3),
        105.0,
    )
    assert short.price_return == pytest.approx(5 / 105)
    # newest first
    assert [(f.symbol, f.fill_ts, f.side) for f in answer.trades] == [
        ("AAAUSDT", hour(3), "sell"),
        ("AAAUSDT", hour(2), "buy"),
        ("BBBUSDT", hour(2), "sell"),
        ("BBBUSDT", hour(1), "buy"),
    ]
    assert {f.model_version for f in answer.trades} == {3}
    assert [p.ts for p in answer.curve] == [hour(1), hour(2), hour(3)]
    assert answer.curve[-1].equity == book.equity


@pytest.mark.parametrize(
    ("request_body", "symbols", "fills", "curve"),
    [
        # one symbol, any case: its book and fills; the portfolio stays the whole book's
        ({"symbols": ["bbbusdt"]}, ["BBBUSDT"], 2, 3),
        # the last fill only; the last 2 hours of the curve
        ({"trades": 1, "curve_hours": 2}, ["AAAUSDT", "BBBUSDT"], 1, 2),
        # no fills, no curve
        ({"trades": 0, "curve_hours": 0}, ["AAAUSDT", "BBBUSDT"], 0, 0),
    ],
)
def test_requests_select_symbols_fills_and_curve(
    lake: Lake, request_body: dict[str, object], symbols: list[str], fills: int, curve: int
) -> None:
    answer = PortfolioService(lake).portfolio(PortfolioRequest.model_validate(request_body))
    assert [b.symbol for b in answer.symbols] == symbols
    assert len(answer.trades) == fills and len(answer.curve) == curve
    assert answer.portfolio.symbols == 2


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"trade": 3}, "trade"),  # a misspelt field is refused, not ignored
        ({"trades": -1}, "trades"),  # negative
        ({"trades": True}, "trades"),  # a boolean is not a count
        ({"curve_hours": 9000}, "curve_hours"),  # more than a year
        ({"symbols": []}, "symbols"),  # an empty list (leave it out for all)
    ],
)
def test_bad_bodies_name_the_field(body: dict[str, object], named: str) -> None:
    with pytest.raises(ValidationError) as error:
        PortfolioRequest.model_validate(body)
    assert error.value.errors()[0]["loc"][0] == named


def test_unknown_symbols_and_a_missing_ledger_map_to_404_and_503(
    lake: Lake, tmp_path: Path
) -> None:
    with pytest.raises(RequestError) as unknown:
        PortfolioService(lake).portfolio(PortfolioRequest(symbols=["ZZZUSDT"]))
    assert unknown.value.field == "symbols" and "ZZZUSDT" in str(unknown.value)
    assert isinstance(_http_error(unknown.value), NotFound)
    with pytest.raises(DataError, match="materialize ml/paper_portfolio") as missing:
        PortfolioService(Lake(str(tmp_path / "empty"))).portfolio(PortfolioRequest())
    assert isinstance(_http_error(missing.value), ServiceUnavailable)


def test_a_new_ledger_version_is_served(lake: Lake) -> None:
    service = PortfolioService(lake, refresh_s=3600)
    first = service.portfolio(PortfolioRequest())
    assert paper_portfolio_from_lake(lake, rebuild=True).mode == "rebuild"
    assert service.portfolio(PortfolioRequest()).equity_version == first.equity_version  # cached
    again = service.portfolio(PortfolioRequest(), fresh=True)
    assert again.equity_version == first.equity_version + 1
    assert again.portfolio == first.portfolio  # the same inputs book the same ledger


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """``bentoml serve`` behind a token on a home whose lake holds the ledger (no champion)."""
    home = tmp_path / "home"
    build_ledger(Lake(str(home / "lake")))
    port = free_port()
    env = service_environment(home, f"sqlite:///{home / 'mlflow.db'}")
    process = start_service(port, log_path=home / "serve.log", env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (home / "serve.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/livez", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the service did not come up within 120 s"
            time.sleep(0.3)
        yield url
    finally:
        stop_service(process)


@pytest.mark.e2e
def test_a_real_service_answers_portfolio(served: str) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    answer = httpx.post(f"{served}/portfolio", json={"trades": 2}, headers=auth, timeout=30)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["portfolio"]["equity"] == pytest.approx((AAA + BBB) / 2)
    assert [t["fill_ts"] for t in body["trades"]] == [
        "2024-01-01T03:00:00Z",
        "2024-01-01T02:00:00Z",
    ]
    assert body["open_positions"][0]["symbol"] == "AAAUSDT"
    bad = httpx.post(f"{served}/portfolio", json={"trade": 2}, headers=auth, timeout=30)
    assert bad.status_code == 400 and "trade" in bad.text
    unknown = httpx.post(f"{served}/portfolio", json={"symbols": ["ZZZ"]}, headers=auth, timeout=30)
    assert unknown.status_code == 404 and "ZZZ" in unknown.text
    assert httpx.post(f"{served}/portfolio", json={}, timeout=30).status_code == 401
