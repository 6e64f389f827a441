"""Bearer-token auth, through real ASGI calls to the middleware around a tiny Starlette app."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from serving.auth import MISSING_TOKEN, WRONG_TOKEN, BearerAuthMiddleware, bearer_token
from warehouse.settings import load_settings

TOKEN = "s3cret-token"


async def _ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"ok {request.url.path}")


def _client(token: str | None) -> TestClient:
    routes = [
        Route(path, _ok, methods=["GET", "POST"])
        for path in ("/predict", "/market", "/livez", "/healthz", "/readyz", "/metrics")
    ]
    app = Starlette(routes=routes)
    app.add_middleware(BearerAuthMiddleware, token=token)
    return TestClient(app)


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "error"),
    [
        ("POST", "/predict", {"Authorization": f"Bearer {TOKEN}"}, 200, None),  # right token
        ("POST", "/predict", {"Authorization": f"bearer  {TOKEN} "}, 200, None),  # scheme case
        ("POST", "/predict", {}, 401, MISSING_TOKEN),  # no header
        ("POST", "/market", {"Authorization": "Bearer wrong"}, 401, WRONG_TOKEN),  # wrong token
        ("POST", "/market", {"Authorization": f"Bearer {TOKEN}x"}, 401, WRONG_TOKEN),  # longer
        ("POST", "/market", {"Authorization": TOKEN}, 401, MISSING_TOKEN),  # no scheme
        ("POST", "/market", {"Authorization": f"Basic {TOKEN}"}, 401, MISSING_TOKEN),  # not Bearer
        ("POST", "/market", {"Authorization": "Bearer "}, 401, MISSING_TOKEN),  # empty token
        ("GET", "/livez", {}, 200, None),  # liveness probe is public
        ("GET", "/healthz", {}, 200, None),  # health probe is public
        ("GET", "/readyz", {}, 200, None),  # readiness probe is public
        ("GET", "/metrics", {}, 200, None),  # Prometheus scrape is public
        ("GET", "/metricsx", {}, 401, MISSING_TOKEN),  # only exact public paths
        ("GET", "/nowhere", {}, 401, MISSING_TOKEN),  # unknown routes reveal nothing
    ],
)
def test_with_a_token_only_probes_and_metrics_are_open(
    method: str, path: str, headers: dict[str, str], status: int, error: str | None
) -> None:
    with _client(TOKEN) as client:
        answer = client.request(method, path, headers=headers)
    assert answer.status_code == status, answer.text
    if error is None:
        assert answer.text.startswith("ok")
    else:
        assert answer.json() == {"error": error}
        assert answer.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("token", [None, ""])  # unset, empty
def test_without_a_token_everything_is_open(token: str | None) -> None:
    with _client(token) as client:
        assert client.post("/predict").status_code == 200
        assert client.post("/predict", headers={"Authorization": "Bearer any"}).status_code == 200


def test_cors_preflight_passes_without_a_token() -> None:
    with _client(TOKEN) as client:
        answer = client.options(
            "/predict", headers={"Origin": "http://x", "Access-Control-Request-Method": "POST"}
        )
    assert answer.status_code != 401


@pytest.mark.parametrize(
    ("headers", "token"),
    [
        ([(b"authorization", b"Bearer abc")], b"abc"),  # usual form
        ([(b"Authorization", b"BEARER abc")], b"abc"),  # any case
        ([(b"x-token", b"abc")], None),  # another header
        ([(b"authorization", b"Token abc")], None),  # another scheme
    ],
)
def test_bearer_token_parsing(headers: list[tuple[bytes, bytes]], token: bytes | None) -> None:
    assert bearer_token(headers) == token


@pytest.mark.parametrize(
    ("environ", "token"),
    [
        ({}, None),  # unset: open
        ({"MARKETLAKE_API_TOKEN": ""}, None),  # empty: open
        ({"MARKETLAKE_API_TOKEN": " abc "}, "abc"),  # trimmed
    ],
)
def test_token_setting(environ: dict[str, str], token: str | None) -> None:
    settings = load_settings(environ)
    assert settings.api_token == token
    assert "abc" not in repr(settings)
