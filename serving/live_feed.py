"""``GET /ws``: the dashboard's WebSocket, and the one watcher per worker that feeds it.

Protocol: the server sends JSON text messages ``{"type": ..., "payload": ...}`` (see
:mod:`serving.board_model`); the first is a ``snapshot``, then only changes. What a client sends
is read and ignored (a browser may ping). Authentication is the service's bearer token, in the
``Authorization`` header or, for a browser, ``?token=`` (see :mod:`serving.auth`); without it the
socket is closed with code 1008.

One watcher per worker process: while at least one client is connected, a task polls the board
(:meth:`serving.live_board.LiveBoard.poll`, in a thread) every ``poll_s`` seconds and a second
task measures the Kafka lag every ``lag_s`` seconds; each change is serialised once and put in
every client's queue. With no client, nothing runs.

Slow or dead clients never block the others or the API:

* at most ``max_clients`` connections per worker (``MARKETLAKE_WS_MAX_CLIENTS``, default 256);
  one more is accepted and closed at once with code 1013 (try again later);
* each client has its own queue of at most ``queue_size`` messages (``MARKETLAKE_WS_QUEUE``,
  default 64) and its own sender task; a client that falls that far behind loses its queued
  changes and gets a fresh ``snapshot`` instead (drop and resync: the page stays exact);
* a send that takes longer than ``send_timeout_s`` (default 10 s) disconnects that client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Mapping

import anyio
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect

from serving.board_model import Snapshot, message
from serving.live_board import LiveBoard
from warehouse.errors import ConfigError

logger = logging.getLogger("bentoml.marketlake")

TOO_MANY_CLIENTS = 1013
"""Close code when ``max_clients`` are connected, or a client is too slow (try again later)."""
GOING_AWAY = 1001


class FeedOptions(BaseModel):
    """Limits and cadence of the feed; :func:`feed_options` reads them from the environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    poll_s: float = Field(1.0, gt=0, description="seconds between two checks of the versions")
    lag_s: float = Field(10.0, gt=0, description="seconds between two Kafka lag measurements")
    max_clients: int = Field(256, ge=1, description="connections per worker")
    queue_size: int = Field(64, ge=1, description="messages queued per client")
    send_timeout_s: float = Field(10.0, gt=0, description="longest wait for one send")


ENVIRONMENT: dict[str, str] = {
    "MARKETLAKE_WS_POLL_S": "poll_s",
    "MARKETLAKE_WS_LAG_S": "lag_s",
    "MARKETLAKE_WS_MAX_CLIENTS": "max_clients",
    "MARKETLAKE_WS_QUEUE": "queue_size",
    "MARKETLAKE_WS_SEND_TIMEOUT_S": "send_timeout_s",
}
"""Environment variable -> :class:`FeedOptions` field."""


def feed_options(environ: Mapping[str, str] | None = None) -> FeedOptions:
    """The feed's options from ``MARKETLAKE_WS_*`` variables (unset: the defaults).

    Args:
        environ: the variables; default None: the process environment.

    Raises:
        ConfigError: a value is not valid for its field (the message names the variable).
    """
    env = os.environ if environ is None else environ
    values = {field: env[name] for name, field in ENVIRONMENT.items() if env.get(name, "").strip()}
    try:
        return FeedOptions.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0])
        name = next(n for n, f in ENVIRONMENT.items() if f == field)
        raise ConfigError(f"{name}={values[field]!r}: {error['msg']}") from exc


class _Resync:
    """Queue marker: send a fresh snapshot here (first message, or after an overflow)."""


RESYNC = _Resync()


class _Client:
    def __init__(self, socket: WebSocket, size: int) -> None:
        self.socket = socket
        self.size = size
        self.queue: deque[str | _Resync] = deque([RESYNC])
        self.ready = asyncio.Event()
        self.ready.set()
        self.resyncs = 0

    def push(self, text: str) -> None:
        if len(self.queue) >= self.size:
            self.queue.clear()
            self.queue.append(RESYNC)
            self.resyncs += 1
        else:
            self.queue.append(text)
        self.ready.set()


class LiveFeed:
    """The ``/ws`` endpoint of one worker: its clients and its watcher.

    Args:
        board: returns the worker's board (called at each connection, in a thread; the
            service returns the same board every time).
        options: limits and cadence; default None: :func:`feed_options`.
    """

    def __init__(self, board: Callable[[], LiveBoard], options: FeedOptions | None = None) -> None:
        self._board_factory = board
        self.options = options or feed_options()
        self._board: LiveBoard | None = None
        self._clients: set[_Client] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._starting = asyncio.Lock()

    @property
    def clients(self) -> int:
        return len(self._clients)

    async def endpoint(self, socket: WebSocket) -> None:
        """Serve one connection until it closes (the Starlette WebSocket route)."""
        await socket.accept()
        if len(self._clients) >= self.options.max_clients:
            await socket.close(
                TOO_MANY_CLIENTS, f"too many dashboard connections ({self.options.max_clients})"
            )
            return
        board = await self._ready_board()
        client = _Client(socket, self.options.queue_size)
        self._clients.add(client)  # its queue starts with RESYNC: the snapshot comes first
        board.clients = len(self._clients)
        self._start_watcher()
        failure: list[BaseException] = []

        async def send(scope: anyio.CancelScope) -> None:
            try:
                await self._send(client, board)
            except Exception as exc:  # too slow (timeout) or the socket broke
                failure.append(exc)
            scope.cancel()

        async def read(scope: anyio.CancelScope) -> None:
            await self._read(socket)
            scope.cancel()

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(send, group.cancel_scope)
                group.start_soon(read, group.cancel_scope)
        finally:
            self._clients.discard(client)
            board.clients = len(self._clients)
            if not self._clients:
                self._stop_watcher()
        if failure:
            logger.info(
                "dashboard: dropping a client that is too slow or gone: %s",
                type(failure[0]).__name__,
            )
            with contextlib.suppress(Exception), anyio.move_on_after(1):
                await socket.close(TOO_MANY_CLIENTS, "too slow")

    async def snapshot(self) -> Snapshot:
        """The current snapshot (``GET /dashboard/snapshot.json``); reads the lake when no
        watcher keeps the board current."""
        return (await self._ready_board()).snapshot()

    async def close(self) -> None:
        """Stop the watcher and close every client (service shutdown)."""
        self._stop_watcher()
        for client in list(self._clients):
            with contextlib.suppress(Exception), anyio.move_on_after(1):
                await client.socket.close(GOING_AWAY)

    async def _ready_board(self) -> LiveBoard:
        async with self._starting:
            board = await asyncio.to_thread(self._board_factory)
            if board is not self._board:  # the first connection (or a new service instance)
                self._stop_watcher()
                await asyncio.to_thread(board.poll)  # the first poll builds every section
                self._board = board
            elif not self._running():
                await asyncio.to_thread(board.poll)  # catch up after an idle spell
            return board

    def _running(self) -> bool:
        return any(not task.done() for task in self._tasks)

    def _stop_watcher(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []

    def _start_watcher(self) -> None:
        if self._running() or self._board is None:
            return
        self._tasks = [
            asyncio.create_task(self._watch(self._board)),
            asyncio.create_task(self._measure_lag(self._board)),
        ]

    async def _watch(self, board: LiveBoard) -> None:
        def poll() -> list[str]:
            return [message(kind, payload) for kind, payload in board.poll()]

        while self._clients:
            started = time.monotonic()
            try:
                texts = await asyncio.to_thread(poll)
            except Exception:
                logger.exception("dashboard watcher: poll failed; retrying")
                texts = []
            for text in texts:
                for client in list(self._clients):
                    client.push(text)
            await asyncio.sleep(max(0.0, self.options.poll_s - (time.monotonic() - started)))

    async def _measure_lag(self, board: LiveBoard) -> None:
        while self._clients:
            await asyncio.to_thread(board.refresh_lag)
            await asyncio.sleep(self.options.lag_s)

    async def _send(self, client: _Client, board: LiveBoard) -> None:
        while True:
            await client.ready.wait()
            client.ready.clear()
            while client.queue:
                item = client.queue.popleft()
                if isinstance(item, _Resync):
                    client.queue.clear()  # the snapshot taken now holds every queued change
                    text = await asyncio.to_thread(message, "snapshot", board.snapshot())
                else:
                    text = item
                with anyio.fail_after(self.options.send_timeout_s):
                    await client.socket.send_text(text)

    @staticmethod
    async def _read(socket: WebSocket) -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                received = await socket.receive()
                if received["type"] == "websocket.disconnect":
                    return
