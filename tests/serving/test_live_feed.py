"""The ``/ws`` feed's rules without a server: one watcher fans out to every client, a stalled
client is dropped without holding up the others, the limits, the queue's drop-and-resync, the
options from the environment, and the token taken out of the query string and the logs."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest

from serving.auth import TokenRedactionFilter, take_query_token
from serving.board_model import (
    PortfolioBoard,
    PredictionBoard,
    PriceUpdate,
    SentimentBoard,
    Snapshot,
    SystemStatus,
)
from serving.live_feed import RESYNC, FeedOptions, LiveFeed, _Client, feed_options
from warehouse.errors import ConfigError

NOW = datetime(2024, 3, 1, tzinfo=UTC)


class _CountingBoard:
    """Every poll reports one ``status`` change, numbered by ``clients`` = the poll count."""

    def __init__(self) -> None:
        self.clients = 0
        self.polls = 0

    def poll(self) -> list[tuple[str, Any]]:
        self.polls += 1
        return [("status", SystemStatus(generated_at=NOW, lag={"polls": self.polls}))]

    def refresh_lag(self) -> None:
        pass

    def snapshot(self) -> Snapshot:
        return Snapshot(
            generated_at=NOW,
            started_at=None,
            prices=PriceUpdate(note="none"),
            predictions=PredictionBoard(note="none"),
            sentiment=SentimentBoard(note="none"),
            portfolio=PortfolioBoard(note="none"),
            status=SystemStatus(generated_at=NOW, lag={"polls": self.polls}),
        )


class _Socket:
    """A WebSocket stand-in; ``stall=True`` stops taking messages after the first (a client
    whose network stopped reading)."""

    def __init__(self, *, stall: bool = False) -> None:
        self.stall = stall
        self.sent: list[dict[str, Any]] = []
        self.closed: int | None = None
        self.gone = asyncio.Event()

    async def accept(self) -> None:
        pass

    async def send_text(self, text: str) -> None:
        if self.stall and self.sent:
            await asyncio.sleep(3600)
        self.sent.append(json.loads(text))

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "websocket.disconnect"}

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed = code
        self.gone.set()


def _feed(board: _CountingBoard, **options: Any) -> LiveFeed:
    defaults: dict[str, Any] = {"poll_s": 0.05, "lag_s": 60, "send_timeout_s": 0.3}
    return LiveFeed(lambda: board, FeedOptions(**(defaults | options)))  # type: ignore[arg-type, return-value]


def test_a_stalled_client_is_dropped_and_the_others_keep_their_feed() -> None:
    async def scenario() -> tuple[_Socket, _Socket, int, int, int]:
        board = _CountingBoard()
        feed = _feed(board)
        fast, stalled = _Socket(), _Socket(stall=True)
        tasks = [asyncio.create_task(feed.endpoint(s)) for s in (fast, stalled)]  # type: ignore[arg-type]
        await asyncio.sleep(1.0)
        clients = feed.clients
        await fast.close()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
        polls = board.polls
        await asyncio.sleep(0.3)  # nobody is connected: the watcher has stopped
        return fast, stalled, clients, polls, board.polls

    fast, stalled, clients, polls, polls_later = asyncio.run(scenario())
    assert fast.sent[0]["type"] == "snapshot"
    updates = [m["payload"]["lag"]["polls"] for m in fast.sent[1:]]
    assert len(updates) >= 8 and updates == sorted(updates)  # every poll, in order, ~20 per s
    assert len(set(updates)) == len(updates)  # one watcher: each change sent once
    assert [m["type"] for m in stalled.sent] == ["snapshot"]
    assert stalled.closed == 1013  # dropped after send_timeout_s, code "try again later"
    assert clients == 1  # the stalled client was gone well before the second ended
    assert polls_later == polls


def test_connections_beyond_the_limit_are_closed_at_once() -> None:
    async def scenario() -> tuple[_Socket, _Socket]:
        feed = _feed(_CountingBoard(), max_clients=1)
        first, second = _Socket(), _Socket()
        task = asyncio.create_task(feed.endpoint(first))  # type: ignore[arg-type]
        await asyncio.sleep(0.2)
        await asyncio.wait_for(feed.endpoint(second), timeout=2)  # type: ignore[arg-type]
        await first.close()
        await task
        return first, second

    first, second = asyncio.run(scenario())
    assert second.closed == 1013 and second.sent == []
    assert first.sent[0]["type"] == "snapshot"


def test_a_full_queue_is_replaced_by_a_fresh_snapshot() -> None:
    client = _Client(None, size=3)  # type: ignore[arg-type]
    assert list(client.queue) == [RESYNC]  # a new client starts with the snapshot
    client.queue.clear()
    for text in ("a", "b", "c"):
        client.push(text)
    assert list(client.queue) == ["a", "b", "c"]
    client.push("d")  # one too many: the changes go, a snapshot (taken when sent) replaces them
    assert list(client.queue) == [RESYNC] and client.resyncs == 1
    client.push("e")
    assert list(client.queue) == [RESYNC, "e"]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, FeedOptions()),  # defaults: 256 clients, 64 messages, 1 s
        (
            {"MARKETLAKE_WS_MAX_CLIENTS": "8", "MARKETLAKE_WS_QUEUE": "16"},
            FeedOptions(max_clients=8, queue_size=16),
        ),
        ({"MARKETLAKE_WS_POLL_S": " "}, FeedOptions()),  # blank: the default
    ],
)
def test_feed_options_from_the_environment(environ: dict[str, str], expected: FeedOptions) -> None:
    assert feed_options(environ) == expected


@pytest.mark.parametrize(
    "environ",
    [{"MARKETLAKE_WS_MAX_CLIENTS": "0"}, {"MARKETLAKE_WS_POLL_S": "soon"}],
)
def test_bad_feed_options_name_the_variable(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=next(iter(environ))):
        feed_options(environ)


@pytest.mark.parametrize(
    ("query", "token", "left"),
    [
        (b"token=abc", b"abc", b""),  # only the token
        (b"a=1&token=x%2By&b=2", b"x+y", b"a=1&b=2"),  # percent-decoded, the rest kept
        (b"token=one&token=two", b"one", b""),  # every copy removed, the first one used
        (b"tokens=1&x=token", None, b"tokens=1&x=token"),  # other names are left alone
        (b"", None, b""),  # no query
    ],
)
def test_the_query_token_is_taken_out_of_the_request(
    query: bytes, token: bytes | None, left: bytes
) -> None:
    scope: dict[str, Any] = {"query_string": query}
    assert take_query_token(scope) == token
    assert scope["query_string"] == left


def test_the_token_is_masked_in_access_logs() -> None:
    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5", "/ws?token=s3cret&x=1"),
        None,
    )
    assert TokenRedactionFilter().filter(record)
    assert record.getMessage() == '127.0.0.1:5 - "WebSocket /ws?token=***&x=1" [accepted]'


def test_the_dashboard_pulls_in_no_dagster() -> None:
    # the lag reuses two small pipelines modules: neither may bring Dagster into the service
    code = (
        "import sys, serving.service, pipelines.broker, pipelines.kafka_io;"
        "print('dagster' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
