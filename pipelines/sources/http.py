"""The HTTP client every remote source shares: timeouts, retries with backoff, a rate limit.

:class:`HttpClient` wraps one :class:`httpx.Client` bound to a base URL and answers
``get_json(path, params)``:

- every call waits until at least ``min_interval_s`` has passed since the previous one started
  (:class:`RateLimiter`), so a backfill stays under the public rate limits;
- a timeout, a connection error or a status in :data:`RETRY_STATUSES` (408, 418, 429, 5xx) is
  retried up to ``retries`` times; the wait before retry *n* is the server's ``Retry-After``
  (seconds or an HTTP date) when it sent one, else exponential backoff with jitter:
  ``b = min(max_backoff_s, backoff_s * 2**(n-1))``, wait uniformly in ``[b/2, b]``;
- a ``Retry-After`` longer than ``max_retry_after_s`` (Binance answers 418 with hours while an IP
  is banned) fails at once instead of sleeping;
- any other 4xx fails at once; every failure is a :class:`~warehouse.errors.SourceError` that
  names the method, the full URL, the status and an excerpt of the body.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import httpx

from warehouse.errors import ConfigError, SourceError

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 418, 429, 500, 502, 503, 504})
"""Statuses worth another try: timeouts, rate limits (418 is Binance's ban) and server errors."""

_BODY_EXCERPT_CHARS = 300


@dataclass(frozen=True)
class HttpOptions:
    """How a source talks HTTP.

    Attributes:
        timeout_s: Read/write/pool timeout of one request in seconds. Defaults to 10.
        connect_timeout_s: Connect timeout in seconds. Defaults to 5.
        retries: Retries after the first attempt (0 = one attempt only). Defaults to 4.
        backoff_s: First backoff step in seconds; doubles each retry. Defaults to 0.5.
        max_backoff_s: Cap of one backoff wait in seconds. Defaults to 30.
        max_retry_after_s: Longest ``Retry-After`` honoured; a longer one fails at once.
            Defaults to 120.
        min_interval_s: Least time between the starts of two calls (rate limit); 0 = none.
            Defaults to 0.
        user_agent: ``User-Agent`` header. Defaults to ``"marketlake/0.1"``.
    """

    timeout_s: float = 10.0
    connect_timeout_s: float = 5.0
    retries: int = 4
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 120.0
    min_interval_s: float = 0.0
    user_agent: str = "marketlake/0.1"

    def __post_init__(self) -> None:
        for name in ("timeout_s", "connect_timeout_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"HttpOptions.{name} must be > 0, got {getattr(self, name)}")
        for name in ("backoff_s", "max_backoff_s", "max_retry_after_s", "min_interval_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"HttpOptions.{name} must be >= 0, got {getattr(self, name)}")
        if self.retries < 0:
            raise ConfigError(f"HttpOptions.retries must be >= 0, got {self.retries}")


class RateLimiter:
    """Spaces calls at least ``min_interval_s`` apart (monotonic clock, thread-safe)."""

    def __init__(self, min_interval_s: float) -> None:
        self._min_interval_s = min_interval_s
        self._next_start = 0.0
        self._lock = threading.Lock()

    def wait(self) -> float:
        """Block until the next call may start; return the seconds waited."""
        with self._lock:
            now = time.monotonic()
            delay = max(0.0, self._next_start - now)
            if delay:
                time.sleep(delay)
            self._next_start = now + delay + self._min_interval_s
            return delay


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Parse a ``Retry-After`` header: delta seconds or an HTTP date.

    Args:
        value: The header value; ``None`` or garbage gives ``None``.
        now: The current time for the HTTP-date form. Defaults to the wall clock (UTC).

    Returns:
        Seconds to wait (>= 0), or ``None`` when there is no usable header.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class HttpClient:
    """A JSON-over-HTTP client for one base URL with retries, backoff and a rate limit.

    Args:
        base_url: Scheme, host and optional path prefix, e.g. ``"https://api.binance.com"``.
        options: Timeouts, retries and rate limit. Defaults to ``HttpOptions()``.
        headers: Extra request headers (API keys); never shown in error messages.
    """

    def __init__(
        self,
        base_url: str,
        options: HttpOptions | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base URL must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.options = options or HttpOptions()
        self._limiter = RateLimiter(self.options.min_interval_s)
        self._rng = random.Random()
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(self.options.timeout_s, connect=self.options.connect_timeout_s),
            headers={
                "User-Agent": self.options.user_agent,
                "Accept": "application/json",
                **(headers or {}),
            },
            follow_redirects=True,
        )

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def backoff_seconds(self, retry: int) -> float:
        """The jittered exponential wait before retry number ``retry`` (1-based)."""
        step = min(self.options.max_backoff_s, self.options.backoff_s * 2 ** (retry - 1))
        return self._rng.uniform(step / 2, step)

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``path`` (relative to the base URL) and return the decoded JSON body.

        Args:
            path: Path under the base URL, e.g. ``"/api/v3/klines"``.
            params: Query parameters; ``None`` values are left out. Defaults to none.

        Returns:
            The parsed JSON document.

        Raises:
            SourceError: a non-retryable status, an undecodable body, a ``Retry-After`` above
                ``max_retry_after_s``, or the retries ran out. The message names the URL.
        """
        query = {k: v for k, v in (params or {}).items() if v is not None}
        url = str(self._client.build_request("GET", path, params=query).url)
        attempts = self.options.retries + 1
        problem = "no attempt made"
        for attempt in range(1, attempts + 1):
            self._limiter.wait()
            retry_after: float | None = None
            try:
                response = self._client.get(path, params=query)
            except httpx.TimeoutException as exc:
                problem = f"timed out ({type(exc).__name__}, timeout {self.options.timeout_s}s)"
            except httpx.TransportError as exc:
                problem = f"connection failed ({type(exc).__name__}: {exc})"
            else:
                if response.is_success:
                    return _decode_json(response, url)
                status = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
                problem = f"{status}: {_excerpt(response)}"
                if response.status_code not in RETRY_STATUSES:
                    raise SourceError(f"GET {url} failed with {problem} (not retried)")
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            if attempt == attempts:
                break
            if retry_after is not None and retry_after > self.options.max_retry_after_s:
                raise SourceError(
                    f"GET {url} failed with {problem}; the server asks to retry after "
                    f"{retry_after:.0f}s, more than max_retry_after_s="
                    f"{self.options.max_retry_after_s:.0f}: try again later"
                )
            delay = retry_after if retry_after is not None else self.backoff_seconds(attempt)
            log.warning(
                "GET %s: %s; retry %d/%d in %.2fs",
                url,
                problem,
                attempt,
                self.options.retries,
                delay,
            )
            time.sleep(delay)
        raise SourceError(f"GET {url} failed after {attempts} attempt(s); last error: {problem}")


def _excerpt(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
    if len(text) > _BODY_EXCERPT_CHARS:
        text = text[:_BODY_EXCERPT_CHARS] + "..."
    return text or "(empty body)"


def _decode_json(response: httpx.Response, url: str) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise SourceError(
            f"GET {url} returned HTTP {response.status_code} but the body is not JSON "
            f"({exc}): {_excerpt(response)}"
        ) from None
