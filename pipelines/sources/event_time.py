"""Event times of the sources, turned into integer milliseconds since the epoch (UTC).

Sources write time in many ways: Binance klines in epoch milliseconds (its 2025+ data dumps in
microseconds), alternative.me in epoch seconds as strings, CSV files as ISO 8601 text with or
without an offset. Text without an offset is taken as UTC (every file in this project is UTC).
An epoch number's unit is read from its size: below 1e11 seconds, below 1e14 milliseconds, below
1e17 microseconds, else nanoseconds (each range covers the years 2001-2286 of its unit).
"""

from __future__ import annotations

from datetime import UTC, datetime

from warehouse.errors import SourceError

_UNIT_LIMITS: tuple[tuple[float, float], ...] = (
    (1e11, 1_000.0),  # seconds
    (1e14, 1.0),  # milliseconds
    (1e17, 1e-3),  # microseconds
)


def epoch_to_ms(value: float) -> int:
    """Convert an epoch number in s, ms, us or ns (unit read from its size) to integer ms."""
    for limit, factor in _UNIT_LIMITS:
        if abs(value) < limit:
            return round(value * factor)
    return round(value * 1e-6)


def epoch_unit_factor(typical: float) -> float:
    """The factor that turns epoch numbers of the size of ``typical`` into milliseconds."""
    for limit, factor in _UNIT_LIMITS:
        if abs(typical) < limit:
            return factor
    return 1e-6


def text_to_ms(text: str) -> int:
    """Parse an epoch number or an ISO 8601 date/time (naive = UTC) into integer ms.

    Raises:
        SourceError: the text is neither; the message quotes it.
    """
    value = text.strip()
    try:
        return epoch_to_ms(float(value))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise SourceError(f"cannot read a time from {text!r}: expected ISO 8601 or epoch") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)
