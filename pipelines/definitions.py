"""The single Dagster entry point: every asset, resource, job and sensor of marketlake."""

from __future__ import annotations

import dagster as dg

from assets.bronze import bronze_candles
from assets.gold import gold_features
from assets.ml import price_model
from assets.silver import silver_candles
from pipelines.resources import default_resources
from pipelines.sensors import candles_lag_sensor, ingest_candles_job

ALL_ASSETS = [bronze_candles, silver_candles, gold_features, price_model]

defs = dg.Definitions(
    assets=ALL_ASSETS,
    jobs=[ingest_candles_job],
    sensors=[candles_lag_sensor],
    resources=default_resources(),
)
