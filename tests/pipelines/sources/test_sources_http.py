"""The shared HTTP client against a loopback server: retries, backoff, Retry-After, rate limit."""

from __future__ import annotations

import itertools
import socket
import time
from datetime import UTC, datetime

import pytest

from pipelines.sources.http import HttpClient, HttpOptions, retry_after_seconds
from warehouse.errors import ConfigError, SourceError

FAST = HttpOptions(timeout_s=2.0, retries=3, backoff_s=0.01, max_backoff_s=0.05)
OK = b'{"ok": true}'


def test_200_returns_the_decoded_json_and_sends_the_query(loopback_api) -> None:
    loopback_api.script("/v1/thing", loopback_api.reply(200, OK))
    with HttpClient(loopback_api.base_url, FAST) as client:
        assert client.get_json("/v1/thing", {"a": 1, "skip": None}) == {"ok": True}
    assert loopback_api.calls("/v1/thing") == [{"a": "1"}]


def test_429_with_retry_after_waits_that_long_then_succeeds(loopback_api) -> None:
    loopback_api.script(
        "/limited",
        loopback_api.reply(429, b'{"msg":"slow down"}', {"Retry-After": "1"}),
        loopback_api.reply(200, OK),
    )
    with HttpClient(loopback_api.base_url, FAST) as client:
        assert client.get_json("/limited") == {"ok": True}
    (_, _, first), (_, _, second) = loopback_api.requests
    assert second - first >= 0.95  # Retry-After: 1 honoured, not the 10 ms backoff


def test_500_twice_then_200_is_retried_with_growing_backoff(loopback_api) -> None:
    loopback_api.script(
        "/flaky",
        loopback_api.reply(500, b"boom"),
        loopback_api.reply(503, b"busy"),
        loopback_api.reply(200, OK),
    )
    options = HttpOptions(retries=2, backoff_s=0.1, max_backoff_s=1.0)
    with HttpClient(loopback_api.base_url, options) as client:
        assert client.get_json("/flaky") == {"ok": True}
    times = [t for _, _, t in loopback_api.requests]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.05  # first wait in [0.05, 0.1]
    assert times[2] - times[1] >= 0.1  # second wait in [0.1, 0.2]


def test_a_timeout_is_retried(loopback_api) -> None:
    loopback_api.script(
        "/slow", loopback_api.reply(200, OK, delay_s=1.0), loopback_api.reply(200, OK)
    )
    options = HttpOptions(timeout_s=0.2, retries=1, backoff_s=0.01)
    with HttpClient(loopback_api.base_url, options) as client:
        assert client.get_json("/slow") == {"ok": True}
    assert len(loopback_api.calls("/slow")) == 2


def test_retries_running_out_raise_an_error_naming_url_status_and_attempts(loopback_api) -> None:
    loopback_api.script("/down", loopback_api.reply(502, b"bad gateway from upstream"))
    with HttpClient(loopback_api.base_url, FAST) as client, pytest.raises(SourceError) as info:
        client.get_json("/down", {"symbol": "BTCUSDT"})
    message = str(info.value)
    assert f"{loopback_api.base_url}/down?symbol=BTCUSDT" in message
    assert "after 4 attempt(s)" in message
    assert "HTTP 502" in message and "bad gateway from upstream" in message
    assert len(loopback_api.calls("/down")) == 4


def test_timeouts_running_out_say_so(loopback_api) -> None:
    loopback_api.script("/never", loopback_api.reply(200, OK, delay_s=1.0))
    options = HttpOptions(timeout_s=0.1, retries=1, backoff_s=0.01)
    with HttpClient(loopback_api.base_url, options) as client, pytest.raises(SourceError) as info:
        client.get_json("/never")
    assert "timed out" in str(info.value) and "/never" in str(info.value)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, b'{"code":-1121,"msg":"Invalid symbol."}'),  # Binance's bad-request answer
        (404, b"not found"),  # wrong path
        (401, b'{"status":{"error_code":10002}}'),  # CoinGecko without a valid key
    ],
)
def test_client_errors_fail_at_once_with_the_body(loopback_api, status, body) -> None:
    loopback_api.script("/bad", loopback_api.reply(status, body))
    with HttpClient(loopback_api.base_url, FAST) as client, pytest.raises(SourceError) as info:
        client.get_json("/bad")
    assert f"HTTP {status}" in str(info.value)
    assert body.decode()[:15] in str(info.value)
    assert "not retried" in str(info.value)
    assert len(loopback_api.calls("/bad")) == 1


def test_retry_after_longer_than_the_cap_fails_fast(loopback_api) -> None:
    loopback_api.script("/banned", loopback_api.reply(418, b"banned", {"Retry-After": "7200"}))
    with HttpClient(loopback_api.base_url, FAST) as client, pytest.raises(SourceError) as info:
        client.get_json("/banned")
    assert "7200s" in str(info.value) and "try again later" in str(info.value)
    assert len(loopback_api.calls("/banned")) == 1


def test_a_body_that_is_not_json_is_an_error(loopback_api) -> None:
    loopback_api.script("/html", loopback_api.reply(200, b"<html>maintenance</html>"))
    with HttpClient(loopback_api.base_url, FAST) as client, pytest.raises(SourceError) as info:
        client.get_json("/html")
    assert "not JSON" in str(info.value) and "maintenance" in str(info.value)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_refused_connection_is_retried_then_reported() -> None:
    port = closed_port()
    options = HttpOptions(retries=1, backoff_s=0.01, connect_timeout_s=0.5)
    with (
        HttpClient(f"http://127.0.0.1:{port}", options) as client,
        pytest.raises(SourceError) as info,
    ):
        client.get_json("/x")
    assert "connection failed" in str(info.value) and f"127.0.0.1:{port}/x" in str(info.value)
    assert "after 2 attempt(s)" in str(info.value)


def test_min_interval_spaces_the_calls(loopback_api) -> None:
    loopback_api.script("/paced", loopback_api.reply(200, OK))
    with HttpClient(loopback_api.base_url, HttpOptions(min_interval_s=0.15)) as client:
        started = time.monotonic()
        for _ in range(3):
            client.get_json("/paced")
        elapsed = time.monotonic() - started
    assert elapsed >= 0.29
    times = [t for _, _, t in loopback_api.requests]
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.14


NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),  # delta seconds
        (" 1.5 ", 1.5),  # fractional, padded
        ("Thu, 01 Jan 2026 12:00:30 GMT", 30.0),  # HTTP date 30 s ahead
        ("Thu, 01 Jan 2026 11:00:00 GMT", 0.0),  # a date in the past means now
        ("-4", 0.0),  # negative is clamped
        ("soon", None),  # garbage is ignored
        (None, None),  # no header
    ],
)
def test_retry_after_parsing(header, seconds) -> None:
    assert retry_after_seconds(header, now=NOW) == seconds


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout_s": 0},  # a zero timeout would never answer
        {"retries": -1},  # negative retries
        {"min_interval_s": -0.1},  # negative pacing
        {"backoff_s": -1},  # negative backoff
    ],
)
def test_invalid_options_are_config_errors(kwargs) -> None:
    with pytest.raises(ConfigError):
        HttpOptions(**kwargs)


def test_base_url_must_be_http() -> None:
    with pytest.raises(ConfigError, match="http"):
        HttpClient("ftp://example.org")


def test_backoff_grows_exponentially_within_jitter_and_cap() -> None:
    client = HttpClient("http://127.0.0.1:9", HttpOptions(backoff_s=1.0, max_backoff_s=5.0))
    try:
        for retry, (low, high) in enumerate([(0.5, 1.0), (1.0, 2.0), (2.0, 4.0), (2.5, 5.0)], 1):
            waits = [client.backoff_seconds(retry) for _ in range(50)]
            assert low <= min(waits) and max(waits) <= high
            assert max(waits) - min(waits) > 0  # jittered
    finally:
        client.close()
