"""The alternative.me Fear & Greed client against its recorded real response."""

from __future__ import annotations

import json

import pytest

from pipelines.sources.alternative_me import FNG_PATH, FearGreedClient, fear_greed_from_payload
from pipelines.sources.http import HttpOptions
from warehouse.errors import ConfigError, SourceError
from warehouse.topics import validate_fear_greed

FAST = HttpOptions(timeout_s=2.0, retries=2, backoff_s=0.01, min_interval_s=0.0)
SAMPLE = "alternative_me_fng_response_2026-09-25.json"


def test_index_returns_valid_messages_oldest_first(loopback_api, api_samples) -> None:
    loopback_api.script(FNG_PATH, loopback_api.recorded(api_samples / SAMPLE))
    with FearGreedClient(loopback_api.base_url, FAST) as client:
        messages = client.index(limit=2)
    for message in messages:
        validate_fear_greed(message)
    assert messages == [
        {"value": 71, "classification": "Greed", "ts": 1790208000000, "source": "alternative.me"},
        {"value": 71, "classification": "Greed", "ts": 1790294400000, "source": "alternative.me"},
    ]
    assert loopback_api.calls(FNG_PATH) == [{"limit": "2", "format": "json"}]


def test_a_server_error_is_retried(loopback_api, api_samples) -> None:
    loopback_api.script(
        FNG_PATH,
        loopback_api.reply(503, b"<html>Service Unavailable</html>"),
        loopback_api.recorded(api_samples / SAMPLE),
    )
    with FearGreedClient(loopback_api.base_url, FAST) as client:
        assert len(client.index(limit=2)) == 2
    assert len(loopback_api.calls(FNG_PATH)) == 2


def test_a_reported_error_is_a_source_error(loopback_api) -> None:
    body = {"name": "Fear and Greed Index", "data": [], "metadata": {"error": "Invalid limit"}}
    loopback_api.script(FNG_PATH, loopback_api.reply(200, json.dumps(body).encode()))
    with FearGreedClient(loopback_api.base_url, FAST) as client, pytest.raises(SourceError) as info:
        client.index(limit=5)
    assert "Invalid limit" in str(info.value)


def test_negative_limit_is_a_config_error() -> None:
    with FearGreedClient("http://127.0.0.1:9", FAST) as client, pytest.raises(ConfigError):
        client.index(limit=-1)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"name": "x", "metadata": {"error": None}}, "no 'data' array"),  # data missing
        ([{"value": "7", "timestamp": "1517443200"}], "no field 'value_classification'"),
        ([{"value": "high", "value_classification": "Greed", "timestamp": "1"}], "non-numeric"),
        ("not an object", "not an object"),  # a bare string
    ],
)
def test_malformed_payloads_are_source_errors(payload, match) -> None:
    with pytest.raises(SourceError, match=match):
        fear_greed_from_payload(payload)
