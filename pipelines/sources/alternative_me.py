"""The Crypto Fear & Greed Index of alternative.me, as ``market.fear_greed`` messages.

Endpoint (no key needed), docs: https://alternative.me/crypto/fear-and-greed-index/#api

``GET https://api.alternative.me/fng/?limit=N&format=json``

- ``limit``: how many daily values, newest first; ``1`` (default) is today's, ``0`` is all history;
- ``format``: ``json`` (default) or ``csv``; ``date_format``: ``us``/``cn``/``kr``/``world`` turns
  ``timestamp`` into a date string (we never send it, so timestamps stay unix seconds).

It answers::

    {"name": "Fear and Greed Index",
     "data": [{"value": "71", "value_classification": "Greed", "timestamp": "1790294400",
               "time_until_update": "33432"}, ...],
     "metadata": {"error": null}}

``value`` (0-100) and ``timestamp`` (unix seconds, 00:00 UTC of the day) are strings;
``time_until_update`` is only on the newest entry. A non-null ``metadata.error`` is a failure.
The public limit is 60 requests per minute.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Any

from pipelines.sources.event_time import epoch_to_ms
from pipelines.sources.http import HttpClient, HttpOptions
from warehouse.errors import ConfigError, SourceError
from warehouse.topics import Record

DEFAULT_BASE_URL = "https://api.alternative.me"
FNG_PATH = "/fng/"
SOURCE = "alternative.me"
DEFAULT_OPTIONS = HttpOptions(min_interval_s=1.0)
"""One call a second: the documented 60 requests per minute."""


def fear_greed_from_records(records: Iterable[Any], *, source: str = SOURCE) -> list[Record]:
    """Turn alternative.me ``data`` entries into ``market.fear_greed`` messages, oldest first.

    Args:
        records: Entries with ``value``, ``value_classification`` and ``timestamp`` (unix
            seconds; ms are recognised by size), as strings or numbers.
        source: The ``source`` field. Defaults to ``"alternative.me"``.

    Raises:
        SourceError: an entry lacks a field or holds a non-numeric value; names the entry.
    """
    messages: list[Record] = []
    for index, entry in enumerate(records):
        if not isinstance(entry, dict):
            raise SourceError(f"fear & greed entry #{index} is not an object: {entry!r:.200}")
        try:
            value = int(str(entry["value"]).strip())
            ts = epoch_to_ms(float(str(entry["timestamp"]).strip()))
            classification = str(entry["value_classification"]).strip()
        except KeyError as exc:
            raise SourceError(
                f"fear & greed entry #{index} has no field {exc}: {entry!r:.200}"
            ) from None
        except ValueError as exc:
            raise SourceError(
                f"fear & greed entry #{index} has a non-numeric value ({exc}): {entry!r:.200}"
            ) from None
        messages.append(
            {"value": value, "classification": classification, "ts": ts, "source": source}
        )
    return sorted(messages, key=lambda message: message["ts"])


def fear_greed_from_payload(payload: Any, *, source: str = SOURCE) -> list[Record]:
    """Messages from a whole ``/fng/`` response (or a bare ``data`` array), oldest first.

    Raises:
        SourceError: ``metadata.error`` is set or there is no ``data`` array.
    """
    if isinstance(payload, list):
        return fear_greed_from_records(payload, source=source)
    if not isinstance(payload, dict):
        raise SourceError(f"fear & greed payload is a {type(payload).__name__}, not an object")
    error = (payload.get("metadata") or {}).get("error")
    if error:
        raise SourceError(f"alternative.me reported an error: {error}")
    data = payload.get("data")
    if not isinstance(data, list):
        raise SourceError(f"fear & greed payload has no 'data' array; keys: {sorted(payload)}")
    return fear_greed_from_records(data, source=source)


class FearGreedClient:
    """The alternative.me Fear & Greed API.

    Args:
        base_url: API root. Defaults to ``https://api.alternative.me``.
        options: Timeouts, retries and rate limit. Defaults to :data:`DEFAULT_OPTIONS`.
    """

    def __init__(self, base_url: str = DEFAULT_BASE_URL, options: HttpOptions | None = None):
        self.http = HttpClient(base_url, options or DEFAULT_OPTIONS)

    def __enter__(self) -> FearGreedClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self.http.close()

    def index(self, *, limit: int = 1) -> list[Record]:
        """The latest ``limit`` daily values as messages, oldest first.

        Args:
            limit: Number of days; 0 = the whole history (since 2018-02-01). Defaults to 1.
        """
        if limit < 0:
            raise ConfigError(f"fear & greed limit must be >= 0 (0 = all), got {limit}")
        payload = self.http.get_json(FNG_PATH, {"limit": limit, "format": "json"})
        return fear_greed_from_payload(payload)
