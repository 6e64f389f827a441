"""Simulated posts and Fear & Greed values that go with simulated candles.

So that every part of the system (sentiment, gold's sentiment and Fear & Greed features, the
dashboard) has data on a machine with no feed: each simulated hour gets a few short posts per
symbol whose tone follows that hour's move (with noise: a quarter of the posts disagree with the
price), and each simulated day a Fear & Greed value that follows the market's trailing 7-day
return. Every message says ``source: "simulator"``, so nobody mistakes them for real ones.

Written by hand because no library generates market-conditioned text; the templates are plain
headlines the lexicon and FinBERT both read.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

BULLISH = (
    "{base} rallies {pct:.1f}% as buyers return",
    "{base} jumps {pct:.1f}% on strong demand, traders turn bullish",
    "Strong gains for {base}: up {pct:.1f}% in an hour",
    "{base} breaks higher, momentum improves",
)
BEARISH = (
    "{base} slides {pct:.1f}% amid heavy selling",
    "{base} drops {pct:.1f}% as losses deepen",
    "Weak market: {base} falls {pct:.1f}%, sellers in control",
    "{base} tumbles on fears of further declines",
)
NEUTRAL = (
    "{base} trades sideways, volume steady",
    "{base} little changed this hour",
    "Quiet hour for {base} as traders wait",
)
AUTHORS = ("deskwatch", "chartroom", "onchain_daily", "macro_notes", "tape_reader")


def base_asset(symbol: str) -> str:
    """``BTCUSDT`` -> ``BTC`` (posts name the asset, candles the pair)."""
    for quote in ("USDT", "USDC", "BUSD", "USD"):
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)]
    return symbol


def hour_posts(
    bars: Sequence[dict[str, object]], rng: np.random.Generator, *, per_symbol: float = 1.0
) -> list[dict[str, object]]:
    """``social.posts`` messages about the hour of ``bars`` (one candle per symbol).

    Args:
        bars: the hour's candles (``symbol``, ``open_time``, ``open``, ``close``).
        rng: the random generator (the same seed gives the same posts).
        per_symbol: mean number of posts per symbol and hour (Poisson; default 1).
    """
    posts: list[dict[str, object]] = []
    for bar in bars:
        symbol = str(bar["symbol"])
        open_time = int(bar["open_time"])  # type: ignore[call-overload]
        move = float(bar["close"]) / float(bar["open"]) - 1  # type: ignore[arg-type]
        for index in range(int(rng.poisson(per_symbol))):
            tone = np.sign(move) if abs(move) > 0.001 else 0.0
            if rng.random() < 0.25:
                tone = -tone if tone else float(rng.choice([-1.0, 1.0]))
            templates = BULLISH if tone > 0 else BEARISH if tone < 0 else NEUTRAL
            text = str(rng.choice(templates)).format(base=base_asset(symbol), pct=abs(move) * 100)
            posts.append(
                {
                    "post_id": f"sim-{symbol}-{open_time}-{index}",
                    "platform": "simulator",
                    "author": str(rng.choice(AUTHORS)),
                    "text": text,
                    # published within the hour the bar covers (after it opened, before it closed)
                    "ts": open_time + int(rng.integers(60_000, HOUR_MS - 60_000)),
                    "symbols": [base_asset(symbol)],
                    "likes": int(rng.poisson(20)),
                    "reposts": int(rng.poisson(4)),
                    "replies": int(rng.poisson(3)),
                    "followers": int(rng.integers(100, 50_000)),
                    "source": "simulator",
                }
            )
    return posts


def classification(value: int) -> str:
    """alternative.me's bands: Extreme Fear < 25 <= Fear < 47 <= Neutral < 55 <= Greed < 75."""
    if value < 25:
        return "Extreme Fear"
    if value < 47:
        return "Fear"
    if value < 55:
        return "Neutral"
    if value < 75:
        return "Greed"
    return "Extreme Greed"


class FearGreedTrail:
    """The daily index of a simulated market: 50 plus the trailing 7-day market return, scaled.

    Feed it every hour's market close (:meth:`add`); at each new UTC day it returns the value
    published at midnight (from the closes before it).
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.closes: deque[float] = deque(maxlen=7 * 24)
        self.day: int | None = None

    def add(self, open_time_ms: int, market_close: float) -> dict[str, object] | None:
        """Record one hour; return the day's ``market.fear_greed`` message when a day starts."""
        day = open_time_ms // DAY_MS
        message = None
        if self.day is not None and day != self.day and len(self.closes) >= 2:
            trailing = self.closes[-1] / self.closes[0] - 1
            value = int(np.clip(round(50 + 250 * trailing + self.rng.normal(0, 4)), 1, 99))
            message = {
                "value": value,
                "classification": classification(value),
                "ts": day * DAY_MS,
                "source": "simulator",
            }
        self.day = day
        self.closes.append(market_close)
        return message


def companions(
    candles: Sequence[dict[str, object]], *, seed: int = 0, per_symbol: float = 1.0
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """The posts and daily Fear & Greed values of a run of simulated candles (in time order).

    The first symbol of each hour stands for the market (as in the simulator).
    """
    rng = np.random.default_rng(seed)
    trail = FearGreedTrail(rng)
    posts: list[dict[str, object]] = []
    index: list[dict[str, object]] = []
    hour: list[dict[str, object]] = []
    for bar in [*candles, None]:
        if hour and (bar is None or bar["open_time"] != hour[0]["open_time"]):
            posts.extend(hour_posts(hour, rng, per_symbol=per_symbol))
            published = trail.add(int(hour[0]["open_time"]), float(hour[0]["close"]))  # type: ignore[call-overload, arg-type]
            if published is not None:
                index.append(published)
            hour = []
        if bar is not None:
            hour.append(bar)
    return posts, index
