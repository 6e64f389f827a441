"""Live sources: the simulator continues the lake hour after hour, paced, never ahead of the clock,
and resumes from the lake on a new broker."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import polars as pl
import pytest

from pipelines.live_sources import SourceOptions, lake_last_bars, run_simulated_source
from pipelines.simulator import HOUR_MS, CandleStream, LastBar, simulate_candles
from warehouse.errors import ConfigError
from warehouse.lake import Lake
from warehouse.settings import Settings, load_settings

HISTORY_END_MS = 1_699_999_200_000  # 2023-11-14 22:00 UTC


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings({"MARKETLAKE_HOME": str(tmp_path)})


def _lake_with_history(
    settings: Settings, land: Callable[..., None], *, end_ms: int = HISTORY_END_MS
) -> Lake:
    lake = Lake(settings.lake_uri)
    messages = simulate_candles(["BTCUSDT", "ETHUSDT"], hours=6, seed=3, end_ms=end_ms)
    land(lake, "market.candles", messages)
    return lake


def test_candle_stream_continues_each_symbol_from_its_last_bar() -> None:
    last = {
        "BTCUSDT": LastBar(HISTORY_END_MS, 40_000.0),
        "ETHUSDT": LastBar(HISTORY_END_MS, 2_000.0),
    }
    stream = CandleStream(["BTCUSDT", "ETHUSDT"], last, seed=1)
    first, second = stream.next_hour(), stream.next_hour()
    # the first hour opens one hour after the last bar, at the last close
    assert [b["open_time"] for b in first] == [HISTORY_END_MS + HOUR_MS] * 2
    assert [b["open"] for b in first] == [40_000.0, 2_000.0]
    # the next hour opens where the previous closed
    assert [b["open"] for b in second] == [b["close"] for b in first]
    assert all(b["low"] <= min(b["open"], b["close"]) <= b["high"] for b in first + second)  # type: ignore[operator]


def test_candle_stream_starts_new_symbols_with_the_others() -> None:
    stream = CandleStream(["BTCUSDT", "NEWUSDT"], {"BTCUSDT": LastBar(HISTORY_END_MS, 1.0)})
    bars = stream.next_hour()
    assert {b["symbol"]: b["open_time"] for b in bars} == {
        "BTCUSDT": HISTORY_END_MS + HOUR_MS,
        "NEWUSDT": HISTORY_END_MS + HOUR_MS,
    }


def test_lake_last_bars_reads_the_newest_bar_per_symbol(
    settings: Settings, land: Callable[..., None]
) -> None:
    lake = _lake_with_history(settings, land)
    last = lake_last_bars(lake)
    assert set(last) == {"BTCUSDT", "ETHUSDT"}
    assert {bar.open_time_ms for bar in last.values()} == {HISTORY_END_MS}
    assert lake_last_bars(Lake(str(Path(settings.lake_uri).parent / "empty"))) == {}


def test_speed_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="--speed"):
        SourceOptions(speed=0)


def _run_source(
    settings: Settings,
    options: SourceOptions,
    *,
    hours: int,
    clock: Callable[[], float] = time.time,
    timeout_s: float = 20,
) -> tuple[list[list[dict[str, object]]], float]:
    """Run the simulated source until it sent ``hours`` hours (or ``timeout_s``); the hours and
    the time it ran."""
    sent: list[list[dict[str, object]]] = []
    stop = threading.Event()

    def on_hour(bars: list[dict[str, object]]) -> None:
        sent.append(bars)
        if len(sent) >= hours:
            stop.set()

    started = time.monotonic()
    thread = threading.Thread(
        target=run_simulated_source,
        args=(settings, options, stop),
        kwargs={"on_hour": on_hour, "clock": clock},
    )
    thread.start()
    thread.join(timeout=timeout_s)
    stop.set()
    thread.join(timeout=10)
    return sent, time.monotonic() - started


def test_simulated_source_resumes_from_the_lake_and_paces_hours(
    settings: Settings,
    land: Callable[..., None],
    broker_at: Callable[[Path], AbstractContextManager[str]],
) -> None:
    lake = _lake_with_history(settings, land)
    closes = {s: bar.close for s, bar in lake_last_bars(lake).items()}
    with broker_at(settings.broker_dir):
        # 36,000 x market speed: one hour every 0.1 s
        sent, seconds = _run_source(settings, SourceOptions(speed=36_000), hours=5)
    assert len(sent) == 5
    opens = [int(bars[0]["open_time"]) for bars in sent]  # type: ignore[call-overload]
    assert opens == [HISTORY_END_MS + (i + 1) * HOUR_MS for i in range(5)]
    assert {str(b["symbol"]): b["open"] for b in sent[0]} == closes
    assert seconds >= 0.35  # paced: 5 hours at 0.1 s each, not a burst


def test_simulated_source_never_produces_a_bar_that_has_not_closed(
    settings: Settings,
    land: Callable[..., None],
    broker_at: Callable[[Path], AbstractContextManager[str]],
) -> None:
    _lake_with_history(settings, land)
    # the wall clock stands 90 minutes after the last bar opened: only the next bar has closed
    frozen = (HISTORY_END_MS + 2.5 * HOUR_MS) / 1000
    with broker_at(settings.broker_dir):
        # 3 s are 30 market hours at this speed: the source waits for the clock, not the pace
        sent, _ = _run_source(
            settings, SourceOptions(speed=36_000), hours=2, clock=lambda: frozen, timeout_s=3
        )
    assert [int(bars[0]["open_time"]) for bars in sent] == [HISTORY_END_MS + HOUR_MS]  # type: ignore[call-overload]


def test_simulated_source_resumes_from_the_lake_on_a_new_broker(
    settings: Settings,
    land: Callable[..., None],
    broker_at: Callable[[Path], AbstractContextManager[str]],
) -> None:
    """Hours sent to a broker that died unlanded are produced again on the next one."""
    _lake_with_history(settings, land)
    sent: list[int] = []
    stop = threading.Event()
    thread = threading.Thread(
        target=run_simulated_source,
        args=(settings, SourceOptions(speed=36_000), stop),
        kwargs={"on_hour": lambda bars: sent.append(int(bars[0]["open_time"]))},  # type: ignore[call-overload]
    )
    with broker_at(settings.broker_dir):
        thread.start()
        deadline = time.monotonic() + 15
        while len(sent) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    # the first broker is gone with what it held; a second one starts
    before = len(sent)
    with broker_at(settings.broker_dir):
        deadline = time.monotonic() + 20
        while len(sent) < before + 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        thread.join(timeout=10)
    assert sent[0] == HISTORY_END_MS + HOUR_MS
    restarts = [i for i in range(1, len(sent)) if sent[i] <= sent[i - 1]]
    assert restarts, f"the source never went back to the lake's newest hour: {sent}"
    # on the new broker it starts again one hour after the newest hour in the lake
    assert sent[restarts[0]] == HISTORY_END_MS + HOUR_MS
    assert pl.Series(sent[restarts[0] :]).diff().drop_nulls().to_list() == [HOUR_MS] * (
        len(sent) - restarts[0] - 1
    )
