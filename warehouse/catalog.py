"""The tables of the lake, by layer. Table names are paths under the lake root."""

from __future__ import annotations

BRONZE_CANDLES = "bronze/candles"
BRONZE_TICKERS = "bronze/tickers"
BRONZE_POSTS = "bronze/posts"
BRONZE_FEAR_GREED = "bronze/fear_greed"
BRONZE_REJECTS = "bronze/_rejects"
SILVER_CANDLES = "silver/candles"
GOLD_FEATURES = "gold/features"
GOLD_PREDICTIONS = "gold/predictions"

TABLES: dict[str, str] = {
    "bronze.candles": BRONZE_CANDLES,
    "bronze.tickers": BRONZE_TICKERS,
    "bronze.posts": BRONZE_POSTS,
    "bronze.fear_greed": BRONZE_FEAR_GREED,
    "bronze.rejects": BRONZE_REJECTS,
    "silver.candles": SILVER_CANDLES,
    "gold.features": GOLD_FEATURES,
    "gold.predictions": GOLD_PREDICTIONS,
}
"""Analyst-facing names (``schema.table``) to lake paths, as the DuckDB catalog shows them."""
