"""The trader's dashboard (``GET /dashboard``): one self-contained HTML page.

The page shows the market table (latest close, 24 h change, 24 h volatility, 24 h volume and a
sparkline of the last 48 hourly closes per symbol), the Fear & Greed index, the market breadth,
the champion's signal for every served horizon per symbol (long, flat or short by the backtest's
threshold rule, with ``P(up)``, the predicted return and the feature time behind it), and the
model name, version and serving times.

Everything is rendered here with the standard library: no template engine, no JavaScript, no
external CSS, fonts or images (the page works offline); the sparklines are inline SVG built in
Python, a ``<meta refresh>`` reloads the page. Every text from the lake or the registry goes
through :func:`html.escape`.

:func:`gather_dashboard` collects the data from the service objects (their caches: no lake read
unless a table version moved), :func:`render_dashboard` turns it into the page, and
:func:`dashboard_app` is the small Starlette app that ``serving/service.py`` mounts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from serving.market import MarketRequest, MarketResponse, MarketService
from serving.signals import Signal, SignalService, SignalsRequest, SignalsResponse
from warehouse.errors import MarketlakeError

DASHBOARD_PATH = "/dashboard"
REFRESH_S = 60
"""Seconds between the page's automatic reloads."""

SECURITY_HEADERS: dict[str, str] = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
"""Sent with the page: nothing cached, nothing loaded from anywhere, no script runs."""

Closes = Sequence[tuple[datetime, float]]


@dataclass(frozen=True)
class DashboardData:
    """Everything the page shows.

    Attributes:
        market: the ``/market`` answer for every symbol; None when the candles are missing.
        signals: one ``/signals`` answer per served horizon, shortest first; empty when the
            gold features are missing.
        closes: per symbol, the ``(ts, close)`` pairs of the sparkline, oldest first.
        generated_at: when the page's data was gathered (UTC).
        started_at: when the service started; None when unknown.
        problems: why a section is empty (messages from the service), shown on the page.
    """

    market: MarketResponse | None
    signals: tuple[SignalsResponse, ...]
    closes: Mapping[str, Closes]
    generated_at: datetime
    started_at: datetime | None = None
    problems: tuple[str, ...] = field(default=())


def gather_dashboard(
    market: MarketService,
    signals: SignalService,
    *,
    started_at: datetime | None = None,
    request: SignalsRequest | None = None,
) -> DashboardData:
    """Collect the page's data from the service objects.

    A missing table (no candles yet, no gold features yet) empties its section and adds the
    service's message to :attr:`DashboardData.problems` instead of failing the page.

    Args:
        market: the market service (prices, Fear & Greed, closes).
        signals: the signal service (the champion's latest predictions).
        started_at: when the service started; default None (not shown).
        request: thresholds and mode of the signals; default None: ``SignalsRequest()``
            (long at ``P(up) >= 0.55``, short at ``<= 0.45``). Its horizon and symbols are
            ignored: every served horizon and every symbol is shown.
    """
    problems: list[str] = []
    market_answer: MarketResponse | None = None
    closes: Mapping[str, Closes] = {}
    try:
        market_answer = market.market(MarketRequest())
        closes = market.recent_closes()
    except MarketlakeError as exc:
        problems.append(f"market: {exc}")
    rule = request if request is not None else SignalsRequest()
    answers: list[SignalsResponse] = []
    try:
        latest = signals.predictions.latest_predictions()  # one model for the whole page
        for horizon in sorted(latest.horizons):
            answers.append(
                signals.signals(
                    rule.model_copy(update={"horizon": horizon, "symbols": None}), latest=latest
                )
            )
    except MarketlakeError as exc:
        problems.append(f"signals: {exc}")
    return DashboardData(
        market=market_answer,
        signals=tuple(answers),
        closes=closes,
        generated_at=datetime.now(UTC),
        started_at=started_at,
        problems=tuple(problems),
    )


def dashboard_app(page: Callable[[], str]) -> Starlette:
    """A Starlette app answering ``GET /dashboard`` with ``page()`` as ``text/html``.

    ``page`` runs in the thread pool (it may read the lake). Mount the app at ``/``; it claims
    no other path.
    """

    def dashboard(_: Request) -> HTMLResponse:
        return HTMLResponse(page(), headers=SECURITY_HEADERS)

    return Starlette(routes=[Route(DASHBOARD_PATH, dashboard, methods=["GET"])])


# --- rendering ------------------------------------------------------------------------------


def sparkline_svg(points: Closes, *, width: int = 160, height: int = 36) -> str:
    """An inline SVG line of ``(ts, close)`` points, x by time, green when the last close is
    at or above the first, red otherwise; a dash when there are fewer than two points.

    Args:
        points: ``(ts, close)`` pairs, oldest first.
        width: the drawing's width in pixels; default 160.
        height: its height in pixels; default 36.
    """
    finite = [(ts, close) for ts, close in points if math.isfinite(close)]
    if len(finite) < 2:
        return '<span class="muted">–</span>'
    start, end = finite[0][0], finite[-1][0]
    span_s = (end - start).total_seconds() or 1.0
    low = min(close for _, close in finite)
    high = max(close for _, close in finite)
    pad = 2.0
    scale_y = (height - 2 * pad) / (high - low) if high > low else 0.0

    def xy(ts: datetime, close: float) -> tuple[float, float]:
        x = pad + (width - 2 * pad) * (ts - start).total_seconds() / span_s
        y = height / 2 if scale_y == 0 else height - pad - (close - low) * scale_y
        return x, y

    coords = [xy(ts, close) for ts, close in finite]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    first, last = finite[0][1], finite[-1][1]
    colour = "#1a7f37" if last >= first else "#cf222e"
    label = (
        f"{len(finite)} closes from {_time(start)} to {_time(end)}: "
        f"{_price(first)} to {_price(last)} (low {_price(low)}, high {_price(high)})"
    )
    end_x, end_y = coords[-1]
    return (
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(label)}"><title>{escape(label)}</title>'
        f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="1.5" '
        f'stroke-linejoin="round"/>'
        f'<circle cx="{end_x:.1f}" cy="{end_y:.1f}" r="2" fill="{colour}"/></svg>'
    )


def render_dashboard(data: DashboardData, *, refresh_s: int | None = REFRESH_S) -> str:
    """The whole page as one HTML string.

    Args:
        data: what to show (see :func:`gather_dashboard`).
        refresh_s: reload the page every this many seconds; default 60; None: never.
    """
    refresh = "" if refresh_s is None else f'<meta http-equiv="refresh" content="{int(refresh_s)}">'
    model = data.signals[0] if data.signals else None
    title = "marketlake dashboard"
    served = [f"page served {_time(data.generated_at)}"]
    if data.started_at is not None:
        served.insert(0, f"serving since {_time(data.started_at)}")
    model_line = (
        f"model <b>{escape(model.model_name)}</b> v{model.model_version}"
        if model is not None
        else "no model predictions"
    )
    problems = "".join(f'<p class="problem">{escape(p)}</p>' for p in data.problems)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8">{refresh}'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{title}</h1><p class=meta>{model_line} · "
        f"{escape(' · '.join(served))}</p></header>{problems}"
        f"{_overview(data.market)}{_market_table(data.market, data.closes)}"
        f"{_signals_table(data.signals)}"
        f"<footer>Changes, volatility and volume over the 24 hours ending at each symbol's "
        f"latest bar; volatility is realised (sum of squared hourly log returns, square-rooted, "
        f"not annualised).{_refresh_note(refresh_s)}</footer></body></html>\n"
    )


def _overview(market: MarketResponse | None) -> str:
    if market is None:
        return ""
    s = market.summary
    breadth = (
        f'<div class="card"><h2>Market</h2><p class="big">{s.symbols} '
        f"symbol{'' if s.symbols == 1 else 's'}</p>"
        f'<p><span class="up">▲ {s.up} up</span> · <span class="down">▼ {s.down} down</span>'
        f" · {s.unchanged} unchanged</p><p>mean 24h change "
        f"{_change(s.mean_change_24h)}</p><p class=meta>as of "
        f"{_time(s.as_of) if s.as_of else '–'} · candles v{market.candles_version}</p></div>"
    )
    fg = market.fear_greed
    if fg is None:
        gauge = '<p class="muted">no Fear &amp; Greed data in the lake</p>'
    else:
        value = max(0, min(100, fg.value))
        gauge = (
            f'<p class="big" style="color:{_fear_greed_colour(value)}">{value}'
            f" <small>{escape(fg.classification or '')}</small></p>"
            f'<div class="gauge"><div style="width:{value}%;'
            f'background:{_fear_greed_colour(value)}"></div></div>'
            f"<p class=meta>0 extreme fear · 100 extreme greed · {_time(fg.ts)}</p>"
        )
    return (
        f'<section class="cards">{breadth}<div class="card"><h2>Fear &amp; Greed</h2>'
        f"{gauge}</div></section>"
    )


def _market_table(market: MarketResponse | None, closes: Mapping[str, Closes]) -> str:
    if market is None:
        return ""
    rows = "".join(
        f"<tr><th scope=row>{escape(p.symbol)}</th><td class=num>{_price(p.close)}</td>"
        f"<td class=num>{_change(p.change_24h)}</td>"
        f"<td class=num>{_percent(p.volatility_24h)}</td>"
        f"<td class=num>{_volume(p.volume_24h)}</td>"
        f"<td>{sparkline_svg(closes.get(p.symbol, ()))}</td>"
        f"<td class=meta>{_time(p.ts)}</td></tr>"
        for p in market.prices
    )
    return (
        "<section><h2>Prices</h2><table><thead><tr><th>Symbol</th><th>Close</th>"
        "<th>24h change</th><th>24h volatility</th><th>24h volume</th><th>Last 48h</th>"
        f"<th>Latest bar</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _signals_table(answers: Sequence[SignalsResponse]) -> str:
    if not answers:
        return ""
    by_symbol: dict[str, dict[int, Signal]] = {}
    for answer in answers:
        for signal in answer.signals:
            by_symbol.setdefault(signal.symbol, {})[answer.horizon_hours] = signal
    heads = "".join(f"<th>{a.horizon_hours}h</th>" for a in answers)
    rows = []
    for symbol in sorted(by_symbol):
        signals = by_symbol[symbol]
        cells = "".join(_signal_cell(signals.get(a.horizon_hours)) for a in answers)
        feature_time = min(s.feature_time for s in signals.values())
        rows.append(
            f"<tr><th scope=row>{escape(symbol)}</th>{cells}"
            f"<td class=meta>{_time(feature_time)}</td></tr>"
        )
    rule = answers[0]
    caption = (
        f"long when P(up) ≥ {rule.long_threshold:g}, short when P(up) ≤ "
        f"{rule.short_threshold:g} ({escape(rule.mode)}), as in the backtest"
    )
    return (
        f"<section><h2>Signals</h2><table><caption>{caption}</caption><thead><tr>"
        f"<th>Symbol</th>{heads}<th>Feature time</th></tr></thead><tbody>{''.join(rows)}"
        "</tbody></table></section>"
    )


def _signal_cell(signal: Signal | None) -> str:
    if signal is None:
        return '<td class="muted">–</td>'
    return (
        f'<td><span class="badge {signal.signal}">{signal.signal}</span> '
        f"P(up) {signal.direction_probability:.3f} · "
        f"{_change(signal.predicted_return, digits=3)}</td>"
    )


def _refresh_note(refresh_s: int | None) -> str:
    return "" if refresh_s is None else f" The page reloads every {int(refresh_s)} s."


def _fear_greed_colour(value: int) -> str:
    for upper, colour in ((24, "#cf222e"), (44, "#bc4c00"), (55, "#6e7781"), (75, "#4ac26b")):
        if value <= upper:
            return colour
    return "#1a7f37"


def _time(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _price(value: float) -> str:
    if not math.isfinite(value):
        return "–"
    return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.6g}"


def _change(value: float | None, *, digits: int = 2) -> str:
    if value is None or not math.isfinite(value):
        return '<span class="muted">–</span>'
    direction = "up" if value > 0 else "down" if value < 0 else "flat"
    return f'<span class="{direction}">{value:+.{digits}%}</span>'


def _percent(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return '<span class="muted">–</span>'
    return f"{value:.2%}"


def _volume(value: float) -> str:
    for factor, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= factor:
            return f"{value / factor:,.2f}{suffix}"
    return f"{value:,.2f}"


_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;
max-width:1100px;padding:16px;color:#1f2328;background:#f6f8fa}
h1{font-size:22px;margin:0}h2{font-size:16px;margin:18px 0 8px}
.meta{color:#57606a;font-size:12px}.muted{color:#8c959f}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:10px 14px;min-width:260px}
.card h2{margin-top:0}.card p{margin:4px 0}.big{font-size:24px;font-weight:600}
.gauge{height:8px;background:#eaeef2;border-radius:4px;overflow:hidden}.gauge div{height:100%}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d0d7de}
caption{caption-side:bottom;text-align:left;color:#57606a;font-size:12px;padding:4px}
th,td{padding:6px 10px;border-bottom:1px solid #eaeef2;text-align:left;white-space:nowrap}
thead th{background:#f6f8fa;font-weight:600}.num{text-align:right;font-variant-numeric:tabular-nums}
.up{color:#1a7f37}.down{color:#cf222e}.flat{color:#57606a}
.badge{display:inline-block;min-width:40px;text-align:center;border-radius:10px;padding:0 6px;
font-weight:600;font-size:12px;color:#fff}
.badge.long{background:#1a7f37}.badge.short{background:#cf222e}.badge.flat{background:#8c959f}
.problem{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:8px}
.spark{display:block}footer{margin-top:16px;color:#57606a;font-size:12px}
"""
