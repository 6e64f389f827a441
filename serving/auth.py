"""Bearer-token auth for the HTTP service, as a plain ASGI middleware.

With a token configured (``MARKETLAKE_API_TOKEN``), every HTTP request except the probes and the
metrics (:data:`PUBLIC_PATHS`) and CORS preflights must carry ``Authorization: Bearer <token>``;
otherwise the answer is ``401`` with a JSON ``{"error": ...}`` body and a ``WWW-Authenticate``
header. Tokens are compared in constant time. Without a token the middleware lets everything
through (the local default).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PUBLIC_PATHS: frozenset[str] = frozenset({"/livez", "/healthz", "/readyz", "/metrics"})
"""BentoML's liveness, health and readiness probes and the Prometheus metrics."""

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


class BearerAuthMiddleware:
    """Reject HTTP requests without the right bearer token.

    Args:
        app: the ASGI app to protect.
        token: the expected token; ``None`` or empty lets every request through.
        public_paths: paths open without a token; default :data:`PUBLIC_PATHS`.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        public_paths: Iterable[str] = PUBLIC_PATHS,
    ) -> None:
        self.app = app
        self._token = token.encode() if token else None
        self.public_paths = frozenset(public_paths)

    @property
    def enabled(self) -> bool:
        return self._token is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._token is None or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if scope["path"] in self.public_paths or _is_preflight(scope):
            await self.app(scope, receive, send)
            return
        given = bearer_token(scope.get("headers", []))
        if given is not None and hmac.compare_digest(given, self._token):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await _unauthorized(send, MISSING_TOKEN if given is None else WRONG_TOKEN)


def _is_preflight(scope: Scope) -> bool:
    if scope.get("method") != "OPTIONS":
        return False
    names = {name.lower() for name, _ in scope.get("headers", [])}
    return b"access-control-request-method" in names


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
