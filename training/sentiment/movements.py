"""Metric movements in financial prose: "operating profit rose", "the net loss narrowed".

In company and market news the signal is rarely an emotional word: it is a figure that moved.
Whether a move is good depends on the figure: profit, sales or a coin's price going up is good,
a loss, costs or layoffs going up is bad. This module finds each direction word ("rose",
"decreased", "down 3 %"), pairs it with the nearest metric word around it, and returns the signed
valence of the pair; "slipped to a net loss" is judged by the state reached. It also reads
"X compared with Y" and "X ... from Y" figures when no direction word is present. All word lists
come from general finance knowledge.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# direction word -> (sign, strength). Strength scales the valence of the move.
DIRECTION_WORDS: dict[str, tuple[int, float]] = {
    **dict.fromkeys(("rose", "rise", "rises", "rising", "risen"), (1, 1.0)),
    **dict.fromkeys(("increased", "increase", "increases", "increasing"), (1, 1.0)),
    **dict.fromkeys(("grew", "grow", "grows", "growing", "grown"), (1, 1.0)),
    **dict.fromkeys(("gained", "gain", "gains", "gaining"), (1, 1.0)),
    **dict.fromkeys(("climbed", "climb", "climbs", "climbing"), (1, 1.0)),
    **dict.fromkeys(("higher", "raised", "raise", "raises", "raising"), (1, 1.0)),
    **dict.fromkeys(("improved", "improve", "improves", "improving", "improvement"), (1, 1.0)),
    **dict.fromkeys(("strengthened", "strengthen", "strengthens"), (1, 1.0)),
    **dict.fromkeys(("boosted", "boost", "boosts", "boosting"), (1, 1.0)),
    **dict.fromkeys(("expanded", "expand", "expands", "expanding", "expansion"), (1, 0.8)),
    **dict.fromkeys(("widened", "widen", "widens", "widening"), (1, 0.8)),
    **dict.fromkeys(("jumped", "jump", "jumps", "jumping"), (1, 1.3)),
    **dict.fromkeys(("leaped", "leapt", "leap", "leaps"), (1, 1.3)),
    **dict.fromkeys(("lifted", "lift", "lifts", "lifting"), (1, 1.0)),
    **dict.fromkeys(("doubled", "tripled", "spiked", "spike"), (1, 1.3)),
    **dict.fromkeys(("rallied", "rally", "rallies", "rallying"), (1, 1.3)),
    **dict.fromkeys(("surged", "surge", "surges", "surging"), (1, 1.4)),
    **dict.fromkeys(("soared", "soar", "soars", "soaring", "skyrocketed"), (1, 1.4)),
    **dict.fromkeys(("fell", "fall", "falls", "falling", "fallen"), (-1, 1.0)),
    **dict.fromkeys(("decreased", "decrease", "decreases", "decreasing"), (-1, 1.0)),
    **dict.fromkeys(("declined", "decline", "declines", "declining"), (-1, 1.0)),
    **dict.fromkeys(("dropped", "drop", "drops", "dropping"), (-1, 1.0)),
    **dict.fromkeys(("lower", "lowered", "lowers", "lowering"), (-1, 1.0)),
    **dict.fromkeys(("slipped", "slip", "slips", "slid", "slide", "slides"), (-1, 1.0)),
    **dict.fromkeys(("lost", "loses", "losing", "shed", "sheds"), (-1, 1.0)),
    **dict.fromkeys(("cut", "cuts", "cutting"), (-1, 1.0)),
    **dict.fromkeys(("weakened", "weaken", "weakens", "weakening"), (-1, 1.0)),
    **dict.fromkeys(("shrank", "shrink", "shrinks", "shrinking", "shrunk"), (-1, 1.0)),
    **dict.fromkeys(("reduced", "reduce", "reduces", "reducing", "reduction"), (-1, 0.8)),
    **dict.fromkeys(("narrowed", "narrow", "narrows", "narrowing"), (-1, 0.8)),
    **dict.fromkeys(("dipped", "dip", "dips", "eased", "eases", "easing"), (-1, 0.8)),
    **dict.fromkeys(("slowed", "slows", "slowing", "contraction"), (-1, 0.8)),
    **dict.fromkeys(("receded", "recede", "recedes", "receding"), (-1, 0.8)),
    **dict.fromkeys(("sank", "sink", "sinks", "sunk"), (-1, 1.2)),
    **dict.fromkeys(("tumbled", "tumble", "tumbles", "slumped", "slump", "halved"), (-1, 1.3)),
    **dict.fromkeys(("plunged", "plunge", "plunges", "plunging", "tanked"), (-1, 1.4)),
    **dict.fromkeys(("plummeted", "plummet", "crashed", "crash", "crashes", "crashing"), (-1, 1.4)),
}
# "up" and "down" are directions only next to a figure or a verb ("up 6 %", "was down").
GATED_DIRECTIONS: dict[str, int] = {"up": 1, "down": -1}
_GATE_NEXT = frozenset({"by", "from", "sharply", "slightly", "strongly", "pct", "percent"})
_GATE_PREVIOUS = frozenset(
    {"was", "were", "is", "are", "been", "be", "went", "go", "goes", "going", "came", "come"}
    | {"ended", "closed", "traded", "trading", "moved", "edged", "sharply", "slightly"}
    | {"edges", "edging", "inched", "inches", "ticked", "ticks", "moves", "crept", "creeps"}
)
# Direction words that judge by themselves: full valence even when no metric is near.
EVALUATIVE_DIRECTIONS = frozenset(
    {"improved", "improve", "improves", "improving", "improvement"}
    | {"weakened", "weaken", "weakens", "weakening", "strengthened", "strengthen", "strengthens"}
)

# metrics whose rise is good news
GOOD_WHEN_UP: frozenset[str] = frozenset(
    {"profit", "profits", "profitability", "earnings", "eps", "ebit", "ebitda", "income"}
    | {"revenue", "revenues", "sales", "turnover", "margin", "margins", "result", "results"}
    | {"dividend", "dividends", "payout", "buyback", "order", "orders", "intake", "backlog"}
    | {"bookings", "demand", "volume", "volumes", "deliveries", "shipments", "production"}
    | {"output", "capacity", "traffic", "passengers", "customers", "users", "subscribers"}
    | {"growth", "performance", "returns", "valuation", "value", "cash", "flow", "market"}
    | {"markets", "share", "shares", "stock", "stocks", "equities", "index", "outlook"}
    | {"guidance", "forecast", "forecasts", "estimate", "estimates", "target", "rating"}
    | {"ratings", "confidence", "sentiment", "economy", "gdp", "exports", "jobs", "workforce"}
    | {"staff", "employees", "personnel", "headcount", "positions", "bitcoin", "btc", "eth"}
    | {"ether", "ethereum", "crypto", "cryptocurrency", "token", "tokens", "coin", "coins"}
    | {"tvl", "hashrate", "adoption", "inflow", "inflows", "liquidity"}
)
# metrics whose rise is bad news
BAD_WHEN_UP: frozenset[str] = frozenset(
    {"loss", "losses", "deficit", "debt", "debts", "cost", "costs", "expenses", "expense"}
    | {"charges", "liabilities", "unemployment", "layoffs", "redundancies", "outflow", "outflows"}
    | {"concerns", "fears", "worries", "uncertainty", "pressure", "defaults", "delinquencies"}
    | {"writedowns", "impairments", "provisions", "churn", "liquidations", "losers"}
)
# a metric we cannot sign with confidence on its own: weight of its pairing
UNCERTAIN_METRICS: dict[str, float] = {"price": 0.6, "prices": 0.6}
# "energy prices", "raw material prices": prices the company pays, so their rise is a cost
COST_QUALIFIERS = frozenset(
    {"energy", "fuel", "oil", "gas", "electricity", "raw", "material", "materials", "input"}
    | {"commodity", "component", "components", "steel", "feed", "purchase", "purchasing"}
)
_DESTINATION = frozenset({"to", "into"})
# "swung to a net loss", "returned to profit", "fell into the red": the state reached decides
STATE_METRICS: dict[str, int] = {"profit": 1, "profits": 1, "black": 1}
STATE_METRICS |= {"loss": -1, "losses": -1, "red": -1}
STATE_VERBS = frozenset(
    {"swung", "swing", "swings", "turned", "turn", "turns", "returned", "return", "returns"}
    | {"moved", "went", "came", "back"}
)
_STATE_FILLERS = frozenset({"a", "an", "the", "net", "operating", "pre", "tax", "pretax"})
_STATE_BOOST = 1.2
_COMPARATORS = frozenset({"from", "against", "versus", "vs", "compared"})
_UNITS = {
    "k": 1e3,
    "thousand": 1e3,
    "m": 1e6,
    "mn": 1e6,
    "mln": 1e6,
    "million": 1e6,
    "b": 1e9,
    "bn": 1e9,
    "billion": 1e9,
}
_NUMBER = re.compile(
    r"^(?:[a-z]{1,3})?(\d{1,3}(?:,\d{3})+|\d+)(?:[.,](\d+))?(k|m|mn|mln|b|bn|million|billion)?$"
)


@dataclass(frozen=True)
class MovementOptions:
    """How metric moves are weighed.

    Attributes:
        valence: VADER-scale valence of a normal move of a known metric. Default 2.5.
        unpaired_weight: share of ``valence`` a move gets when no metric is near it. Default 0.6.
        left_window: how many tokens before a direction word are searched for its metric.
            Default 6.
        right_window: how many tokens after it ("an increase in net sales"). Default 4.
    """

    valence: float = 2.5
    unpaired_weight: float = 0.6
    left_window: int = 6
    right_window: int = 4


@dataclass(frozen=True)
class Movement:
    """One direction word (or comparison marker) and the metric it moves.

    Attributes:
        direction_index: token index of the direction word or comparison marker.
        metric_index: token index of the metric, ``None`` when unpaired.
        valence: signed VADER-scale valence of the move.
    """

    direction_index: int
    metric_index: int | None
    valence: float


def _is_number(key: str) -> bool:
    return bool(key) and (key[0].isdigit() or _NUMBER.match(key) is not None)


def _direction(keys: Sequence[str], i: int) -> tuple[int, float] | None:
    key = keys[i]
    if key in DIRECTION_WORDS:
        return DIRECTION_WORDS[key]
    if key in GATED_DIRECTIONS:
        following = keys[i + 1] if i + 1 < len(keys) else ""
        previous = keys[i - 1] if i > 0 else ""
        if _is_number(following) or following in _GATE_NEXT or previous in _GATE_PREVIOUS:
            return GATED_DIRECTIONS[key], 1.0
    return None


def _state_reached(keys: Sequence[str], i: int) -> tuple[int, int] | None:
    """The (index, sign) of the state a move at ``i`` ends in: "swung to a net loss"."""
    if keys[i] not in STATE_VERBS and keys[i] not in DIRECTION_WORDS:
        return None
    if i + 1 >= len(keys) or keys[i + 1] not in _DESTINATION:
        return None
    for j in range(i + 2, min(len(keys), i + 6)):
        if keys[j] in STATE_METRICS:
            return j, STATE_METRICS[keys[j]]
        if keys[j] not in _STATE_FILLERS:
            return None
    return None


def _metric_sign(keys: Sequence[str], i: int) -> tuple[int, float] | None:
    key = keys[i]
    if key in GOOD_WHEN_UP:
        return 1, 1.0
    if key in BAD_WHEN_UP:
        return -1, 1.0
    if key in UNCERTAIN_METRICS:
        if any(keys[j] in COST_QUALIFIERS for j in range(max(0, i - 2), i)):
            return -1, 1.0
        return 1, UNCERTAIN_METRICS[key]
    return None


def _nearest_metric(
    keys: Sequence[str], i: int, taken: set[int], options: MovementOptions
) -> int | None:
    left = next(
        (
            j
            for j in range(i - 1, max(-1, i - 1 - options.left_window), -1)
            if j not in taken and _metric_sign(keys, j)
        ),
        None,
    )
    right = None
    for j in range(i + 1, min(len(keys), i + 1 + options.right_window)):
        if keys[j] in _DESTINATION:
            break  # "slipped to a net loss": the loss is where it ended, not what moved
        if j not in taken and _metric_sign(keys, j):
            right = j
            break
    if left is None or (right is not None and right - i < i - left):
        return right
    return left


def find_movements(
    keys: Sequence[str], *, options: MovementOptions | None = None
) -> list[Movement]:
    """Find the metric moves in a tokenised sentence.

    Args:
        keys: lower-cased tokens with surrounding punctuation removed.
        options: weights and windows; ``None`` means :class:`MovementOptions` defaults.

    Returns:
        One :class:`Movement` per direction word, then one per "X compared with Y" figure pair
        of a metric that no direction word moved, in token order.
    """
    options = options or MovementOptions()
    moves: list[Movement] = []
    taken: set[int] = set()
    for i in range(len(keys)):
        state = _state_reached(keys, i)
        if state is not None and state[0] not in taken:
            state_metric, state_sign = state
            taken.add(state_metric)
            valence = state_sign * _STATE_BOOST * options.valence
            moves.append(Movement(direction_index=i, metric_index=state_metric, valence=valence))
            continue
        found = _direction(keys, i)
        if found is None:
            continue
        sign, strength = found
        metric = _nearest_metric(keys, i, taken, options)
        if metric is not None:
            metric_sign, certainty = _metric_sign(keys, metric) or (1, 1.0)
            taken.add(metric)
            weight = certainty
        else:
            metric_sign = 1
            following = keys[i + 1] if i + 1 < len(keys) else ""
            figure = _is_number(following) or following in {"pct", "percent"}
            weight = 1.0 if figure or keys[i] in EVALUATIVE_DIRECTIONS else options.unpaired_weight
        valence = sign * metric_sign * strength * weight * options.valence
        moves.append(Movement(direction_index=i, metric_index=metric, valence=valence))
    moves.extend(_comparisons(keys, taken, {m.direction_index for m in moves}, options))
    return sorted(moves, key=lambda move: move.direction_index)


def _figure(keys: Sequence[str], i: int) -> float | None:
    """The value of the figure at token ``i`` ("4.9", "115,000", "160m", "EUR 4.9 mn")."""
    match = _NUMBER.match(keys[i])
    if match is None:
        return None
    whole, decimals, unit = match.groups()
    if decimals is None and unit is None and "," not in whole and 1900 <= int(whole) <= 2100:
        return None  # a year, not a figure
    value = float(whole.replace(",", "") + (f".{decimals}" if decimals else ""))
    if unit is None and i + 1 < len(keys) and keys[i + 1] in _UNITS:
        unit = keys[i + 1]
    return value * _UNITS.get(unit or "", 1.0)


def _comparisons(
    keys: Sequence[str], taken: set[int], directions: set[int], options: MovementOptions
) -> list[Movement]:
    moves: list[Movement] = []
    for i in range(len(keys)):
        signed = _metric_sign(keys, i)
        if signed is None or i in taken:
            continue
        first = next((j for j in range(i + 1, min(len(keys), i + 8)) if _figure(keys, j)), None)
        if first is None:
            continue
        marker = next(
            (j for j in range(first + 1, min(len(keys), first + 6)) if keys[j] in _COMPARATORS),
            None,
        )
        if marker is None:
            continue
        second = next(
            (j for j in range(marker + 1, min(len(keys), marker + 6)) if _figure(keys, j)), None
        )
        if second is None or any(j in directions for j in range(i, second + 1)):
            continue
        now, before = _figure(keys, first) or 0.0, _figure(keys, second) or 0.0
        if now == before:
            continue
        metric_sign, certainty = signed
        sign = 1 if now > before else -1
        valence = sign * metric_sign * certainty * options.valence
        moves.append(Movement(direction_index=marker, metric_index=i, valence=valence))
        taken.add(i)
    return moves
