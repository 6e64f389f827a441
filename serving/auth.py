"""Bearer-token auth for the HTTP service, as a plain ASGI middleware.

With a token configured (``MARKETLAKE_API_TOKEN``), every HTTP request except the probes and the
metrics (:data:`PUBLIC_PATHS`), the dashboard's static files (:data:`PUBLIC_PREFIXES`: scripts,
styles, the vendored chart library; no data) and CORS preflights must carry
``Authorization: Bearer <token>``; otherwise the answer is ``401`` with a JSON ``{"error": ...}``
body and a ``WWW-Authenticate`` header, and a WebSocket is accepted and closed at once with code
1008 (policy violation). Tokens are compared in constant time. Without a token the middleware
lets everything through (the local default).

A browser cannot set a header when it opens a page or a WebSocket, so the browser paths
(:data:`QUERY_TOKEN_PATHS`: ``/dashboard`` and ``/ws``) also take ``?token=<token>``. Every
``token`` query parameter is removed from the request (``scope["query_string"]``, in place)
before the request goes on, so no access log, trace or handler downstream ever sees it; the
API routes never accept it. :class:`TokenRedactionFilter` also masks ``token=...`` in the
uvicorn and BentoML access loggers, for logs written from a copy of the request.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import unquote_to_bytes

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PUBLIC_PATHS: frozenset[str] = frozenset({"/livez", "/healthz", "/readyz", "/metrics"})
"""BentoML's liveness, health and readiness probes and the Prometheus metrics."""
PUBLIC_PREFIXES: tuple[str, ...] = ("/dashboard/static/",)
"""The dashboard's static files (code and styles, no data): a browser loads them headerless."""
QUERY_TOKEN_PATHS: frozenset[str] = frozenset({"/dashboard", "/ws"})
"""Paths a browser opens itself, which may carry the token as ``?token=``."""
TOKEN_PARAMETER = b"token"

MISSING_TOKEN = "missing bearer token: send the header 'Authorization: Bearer <token>'"
WRONG_TOKEN = "invalid bearer token"


def bearer_token(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The token of the first ``Authorization: Bearer <token>`` header, or ``None``."""
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip()
            return None
    return None


def take_query_token(scope: Scope) -> bytes | None:
    """Remove every ``token`` parameter from ``scope["query_string"]`` (in place); return the
    first one's value (percent-decoded), or ``None``."""
    raw: bytes = scope.get("query_string", b"")
    if TOKEN_PARAMETER not in raw:
        return None
    kept, found = [], None
    for part in raw.split(b"&"):
        name, _, value = part.partition(b"=")
        if unquote_to_bytes(name.replace(b"+", b" ")) == TOKEN_PARAMETER:
            if found is None:
                found = unquote_to_bytes(value.replace(b"+", b" "))
            continue
        kept.append(part)
    scope["query_string"] = b"&".join(kept)
    return found


class BearerAuthMiddleware:
    """Reject HTTP requests and WebSockets without the right bearer token.

    Args:
        app: the ASGI app to protect.
        token: the expected token; ``None`` or empty lets every request through.
        public_paths: paths open without a token; default :data:`PUBLIC_PATHS`.
        public_prefixes: path prefixes open without a token; default :data:`PUBLIC_PREFIXES`.
        query_token_paths: paths that also take ``?token=``; default :data:`QUERY_TOKEN_PATHS`.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        public_paths: Iterable[str] = PUBLIC_PATHS,
        public_prefixes: Iterable[str] = PUBLIC_PREFIXES,
        query_token_paths: Iterable[str] = QUERY_TOKEN_PATHS,
    ) -> None:
        self.app = app
        self._token = token.encode() if token else None
        self.public_paths = frozenset(public_paths)
        self.public_prefixes = tuple(public_prefixes)
        self.query_token_paths = frozenset(query_token_paths)

    @property
    def enabled(self) -> bool:
        return self._token is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        query_token = take_query_token(scope)  # always: a token never travels further
        path = scope["path"]
        if (
            self._token is None
            or path in self.public_paths
            or path.startswith(self.public_prefixes)
            or _is_preflight(scope)
        ):
            await self.app(scope, receive, send)
            return
        given = bearer_token(scope.get("headers", []))
        if given is None and path in self.query_token_paths:
            given = query_token
        if given is not None and hmac.compare_digest(given, self._token):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await _refuse_websocket(receive, send, MISSING_TOKEN if given is None else WRONG_TOKEN)
            return
        await _unauthorized(send, MISSING_TOKEN if given is None else WRONG_TOKEN)


def _is_preflight(scope: Scope) -> bool:
    if scope.get("method") != "OPTIONS":
        return False
    names = {name.lower() for name, _ in scope.get("headers", [])}
    return b"access-control-request-method" in names


async def _refuse_websocket(receive: Receive, send: Send, reason: str) -> None:
    """Accept, then close with 1008: the client sees the code and the reason (a close before
    the accept would reach it as a bare HTTP 403)."""
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": 1008, "reason": reason[:120]})


class TokenRedactionFilter(logging.Filter):
    """Mask ``token=<value>`` in log records (access logs that print a query string)."""

    PATTERN = re.compile(r"(token=)[^&\s\"']+", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "token=" in text.lower():
            record.msg = self.PATTERN.sub(r"\1***", text)
            record.args = None
        return True


REDACTED_LOGGERS = ("uvicorn.error", "uvicorn.access", "bentoml.access")


def install_token_redaction() -> None:
    """Add :class:`TokenRedactionFilter` to the uvicorn and BentoML access loggers (once)."""
    for name in REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, TokenRedactionFilter) for f in logger.filters):
            logger.addFilter(TokenRedactionFilter())


async def _unauthorized(send: Send, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer realm="marketlake"'),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
