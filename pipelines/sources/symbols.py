"""Which traded symbols a post or headline talks about: cashtags, hashtags and coin names.

The table :data:`ASSETS` maps each asset to its exchange base ticker; a match becomes the pair
``<base><quote>`` (quote ``"USDT"`` by default), e.g. ``"bitcoin"`` -> ``BTCUSDT``. Rules, in order:

1. Cashtags and hashtags (``$BTC``, ``#btc``, ``#Bitcoin``, ``$ETH.X``), any case: a ticker or alias
   of the table; a coin name written as one word (``#BinanceCoin``); or a pair whose base is known
   and whose rest is a quote currency of :data:`QUOTES` (``$BTCUSD``, ``$ETHBTC`` -> ETH).
2. Coin names in plain text, case-insensitive, whole words, with an optional plural ``s``
   (``Bitcoins``); longer names win (``bitcoin cash`` is BCH, not BTC).
3. A bare ticker in capitals (``BTC``, ``ETH``) for assets whose ticker is not an everyday word
   (``LINK``, ``DOT``, ``ETC`` must carry a ``$`` or ``#``).

Unknown tickers are ignored (``$AU``, ``$BORING``): the table lists only what we trade, and a
ticker that is not in it cannot be joined with candles anyway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Asset:
    """One tradable asset and the ways people write it."""

    base: str
    names: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    bare_ticker: bool = True


ASSETS: tuple[Asset, ...] = (
    Asset("BTC", names=("bitcoin",), aliases=("XBT",)),
    Asset("ETH", names=("ethereum", "ether")),
    Asset("BNB", names=("binance coin",)),
    Asset("SOL", names=("solana",)),
    Asset("XRP", names=("ripple",)),
    Asset("ADA", names=("cardano",)),
    Asset("DOGE", names=("dogecoin",)),
    Asset("LTC", names=("litecoin",)),
    Asset("BCH", names=("bitcoin cash",)),
    Asset("ETC", names=("ethereum classic",), bare_ticker=False),
    Asset("DOT", names=("polkadot",), bare_ticker=False),
    Asset("LINK", names=("chainlink",), bare_ticker=False),
    Asset("TRX", names=("tron",)),
    Asset("AVAX", names=()),
    Asset("SHIB", names=("shiba inu",)),
    Asset("XLM", names=("stellar lumens",)),
    Asset("XMR", names=("monero",)),
    Asset("ATOM", names=("cosmos hub",), bare_ticker=False),
)
"""The assets recognised. Names that are everyday words (avalanche, polygon, stellar) are left
out on purpose: they would tag posts about snow, shapes and praise."""

QUOTES: tuple[str, ...] = (
    "USDT",
    "USDC",
    "BUSD",
    "USD",
    "EUR",
    "GBP",
    "CAD",
    "AUD",
    "JPY",
    "KRW",
    "TRY",
    "BTC",
    "ETH",
)
"""Quote currencies recognised in pair cashtags such as ``$BTCUSD``."""

_TAG = re.compile(r"(?<![\w$#])[$#]([A-Za-z][A-Za-z0-9]{1,19})(?:\.X)?\b")
_BARE = re.compile(r"(?<![\w$#])([A-Z]{2,6})\b")


def _tag_lookup() -> dict[str, str]:
    lookup: dict[str, str] = {}
    for asset in ASSETS:
        for word in (asset.base, *asset.aliases, *(n.replace(" ", "") for n in asset.names)):
            lookup[word.upper()] = asset.base
    return lookup


_TAG_TO_BASE = _tag_lookup()
_BARE_TO_BASE = {
    word: asset.base
    for asset in ASSETS
    if asset.bare_ticker
    for word in (asset.base, *asset.aliases)
}
_NAMES = sorted(
    ((name, asset.base) for asset in ASSETS for name in asset.names),
    key=lambda pair: -len(pair[0]),
)
_NAME_PATTERN = re.compile(
    r"\b(" + "|".join(re.escape(n).replace(r"\ ", r"\s+") for n, _ in _NAMES) + r")s?\b",
    re.IGNORECASE,
)
_NAME_TO_BASE = {name: base for name, base in _NAMES}


def base_of_tag(tag: str) -> str | None:
    """The base ticker a cashtag/hashtag body (no ``$``/``#``) stands for, or ``None``."""
    word = tag.upper()
    if word in _TAG_TO_BASE:
        return _TAG_TO_BASE[word]
    for quote in QUOTES:
        if word.endswith(quote) and word[: -len(quote)] in _TAG_TO_BASE:
            return _TAG_TO_BASE[word[: -len(quote)]]
    return None


def extract_symbols(text: str, *, quote: str = "USDT") -> list[str]:
    """The exchange symbols a text mentions, sorted, each once (see the module rules).

    Args:
        text: A post, a headline, or several such strings joined.
        quote: Quote currency appended to each base. Defaults to ``"USDT"``.

    Returns:
        Pairs such as ``["BTCUSDT", "ETHUSDT"]``; empty when nothing is recognised.
    """
    bases: set[str] = set()
    for match in _TAG.finditer(text):
        base = base_of_tag(match.group(1))
        if base is not None:
            bases.add(base)
    for match in _NAME_PATTERN.finditer(text):
        name = " ".join(match.group(1).lower().split())
        bases.add(_NAME_TO_BASE[name])
    for match in _BARE.finditer(text):
        base = _BARE_TO_BASE.get(match.group(1))
        if base is not None:
            bases.add(base)
    return sorted(f"{base}{quote}" for base in bases)
