"""``marketlake status``: what runs, the landing lag, how fresh each layer is, the champion.

Works with or without ``marketlake up``: the components come from ``up.json``, the lag from the
broker and the offsets in the lake, the freshness from the tables, the champion from MLflow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from pipelines.up_state import read_up_state
from warehouse.catalog import (
    BRONZE_CANDLES,
    GOLD_FEATURES,
    GOLD_PREDICTIONS,
    SILVER_CANDLES,
)
from warehouse.errors import MarketlakeError
from warehouse.lake import Lake, open_table
from warehouse.settings import Settings
from warehouse.topics import TOPICS

LAYERS: tuple[tuple[str, str, str], ...] = (
    ("bronze", BRONZE_CANDLES, "open_time"),
    ("silver", SILVER_CANDLES, "ts"),
    ("gold", GOLD_FEATURES, "ts"),
    ("predictions", GOLD_PREDICTIONS, "ts"),
)
"""(layer, table, event-time column) whose newest row ``status`` reports."""


@dataclass(frozen=True)
class LayerFreshness:
    """The newest row of a layer's table and when the table last changed."""

    layer: str
    table: str
    newest: datetime | None
    version: int | None
    updated_s_ago: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "table": self.table,
            "newest": None if self.newest is None else self.newest.isoformat(),
            "newest_age_s": None
            if self.newest is None
            else round(time.time() - self.newest.timestamp(), 1),
            "version": self.version,
            "updated_s_ago": None if self.updated_s_ago is None else round(self.updated_s_ago, 1),
        }


def layer_freshness(lake: Lake, layer: str, table: str, column: str) -> LayerFreshness:
    """The newest ``column`` value of ``table`` and the age of its last commit."""
    location = lake.location(table)
    delta = open_table(location)
    if delta is None:
        return LayerFreshness(layer, table, None, None, None)
    newest = (
        pl.scan_pyarrow_dataset(delta.to_pyarrow_dataset()).select(pl.col(column).max()).collect()
    ).item()
    committed_ms = delta.history(1)[0].get("timestamp")
    ago = None if committed_ms is None else time.time() - int(committed_ms) / 1000
    if isinstance(newest, datetime) and newest.tzinfo is None:
        newest = newest.replace(tzinfo=UTC)
    return LayerFreshness(layer, table, newest, delta.version(), ago)


def topic_lag(settings: Settings, lake: Lake) -> dict[str, int | str]:
    """topic -> records in Kafka beyond the offsets stored in bronze (or why it is unknown)."""
    from pipelines.resources import KafkaResource

    kafka = KafkaResource()
    lags: dict[str, int | str] = {}
    for topic, spec in TOPICS.items():
        try:
            lag = kafka.lag(spec, lake)
        except MarketlakeError as exc:
            lags[topic] = f"unknown: {exc}"
            continue
        except Exception as exc:  # a broker that does not answer the metadata request
            lags[topic] = f"unknown: {type(exc).__name__}: {exc}"
            continue
        lags[topic] = sum(max(0, end - start) for start, end in lag.values())
    return lags


def champion_summary(settings: Settings) -> dict[str, Any]:
    """The champion's version and validation score, or why there is none."""
    from mlflow.tracking import MlflowClient

    from training.config import MODEL_NAME
    from training.registry import CHAMPION, list_versions

    client = MlflowClient(settings.mlflow_tracking_uri)
    versions = list_versions(client, MODEL_NAME)
    champion = next((v for v in versions if CHAMPION in v.aliases), None)
    if champion is None:
        return {"model": MODEL_NAME, "version": None, "versions": len(versions)}
    return {
        "model": MODEL_NAME,
        "version": champion.version,
        "val_direction_accuracy": champion.score,
        "versions": len(versions),
    }


def gather_status(settings: Settings) -> dict[str, Any]:
    """Everything ``marketlake status`` shows, as one JSON-ready dict."""
    lake = Lake(settings.lake_uri, settings.storage_options)
    state = read_up_state(settings.home)
    components: dict[str, Any] = {}
    if state is not None:
        components = {
            name: {"pid": pid, "running": alive}
            for (name, pid), alive in zip(state.pids.items(), state.alive().values(), strict=True)
        }
    try:
        from pipelines.broker import resolve_bootstrap

        bootstrap: str | None = resolve_bootstrap(settings)
    except MarketlakeError:
        bootstrap = None
    return {
        "up": state is not None and state.running("up") is not None,
        "started_at": None if state is None else state.started_at,
        "urls": {}
        if state is None
        else {
            k: v
            for k, v in {
                "api": state.api_url,
                "dashboard": f"{state.api_url}/dashboard",
                "dagster": state.dagster_url,
                "mlflow": state.mlflow_url,
            }.items()
            if v
        },
        "source": None if state is None else state.source,
        "components": components,
        "broker": bootstrap,
        "lag": topic_lag(settings, lake) if bootstrap else {},
        "layers": [layer_freshness(lake, *layer).to_dict() for layer in LAYERS],
        "champion": champion_summary(settings),
    }


def format_status(status: dict[str, Any]) -> list[str]:
    """The lines ``marketlake status`` prints."""
    lines = [
        "marketlake is up since " + str(status["started_at"])
        if status["up"]
        else "marketlake up is not running"
    ]
    for name, url in status["urls"].items():
        lines.append(f"  {name:<12} {url}")
    if status["components"]:
        lines.append("components:")
        for name, entry in status["components"].items():
            state = "running" if entry["running"] else "STOPPED"
            lines.append(f"  {name:<18} {state:<8} pid {entry['pid']}")
    lines.append(f"broker: {status['broker'] or 'none answers'}")
    if status["lag"]:
        lines.append("lag (records in Kafka not yet in bronze):")
        for topic, lag in status["lag"].items():
            lines.append(f"  {topic:<18} {lag}")
    lines.append("freshness (newest row; last commit):")
    for entry in status["layers"]:
        if entry["version"] is None:
            lines.append(f"  {entry['layer']:<12} {entry['table']:<18} not materialized")
            continue
        lines.append(
            f"  {entry['layer']:<12} {entry['table']:<18} newest {entry['newest']} "
            f"({_age(entry['newest_age_s'])} old); v{entry['version']} "
            f"written {_age(entry['updated_s_ago'])} ago"
        )
    champion = status["champion"]
    if champion["version"] is None:
        lines.append(f"champion: none of {champion['versions']} versions of {champion['model']}")
    else:
        score = champion.get("val_direction_accuracy")
        lines.append(
            f"champion: {champion['model']} v{champion['version']}"
            + (f" (validation accuracy {score:.3f})" if score is not None else "")
        )
    return lines


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 120:
        return f"{sign}{seconds:.0f} s"
    if seconds < 7200:
        return f"{sign}{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{sign}{seconds / 3600:.1f} h"
    return f"{sign}{seconds / 86400:.1f} d"
