"""The tables of the lake, by layer. Table names are paths under the lake root."""

from __future__ import annotations

BRONZE_CANDLES = "bronze/candles"
BRONZE_TICKERS = "bronze/tickers"
BRONZE_POSTS = "bronze/posts"
BRONZE_FEAR_GREED = "bronze/fear_greed"
BRONZE_REJECTS = "bronze/_rejects"
SILVER_CANDLES = "silver/candles"
SILVER_POSTS = "silver/posts"
SILVER_TICKERS = "silver/tickers"
SILVER_TICKERS_LATEST = "silver/tickers_latest"
SILVER_FEAR_GREED = "silver/fear_greed"
GOLD_FEATURES = "gold/features"
GOLD_PREDICTIONS = "gold/predictions"
GOLD_SERVED_PREDICTIONS = "gold/served_predictions"
GOLD_PAPER_TRADES = "gold/paper_trades"
GOLD_PAPER_EQUITY = "gold/paper_equity"

TABLES: dict[str, str] = {
    "bronze.candles": BRONZE_CANDLES,
    "bronze.tickers": BRONZE_TICKERS,
    "bronze.posts": BRONZE_POSTS,
    "bronze.fear_greed": BRONZE_FEAR_GREED,
    "bronze.rejects": BRONZE_REJECTS,
    "silver.candles": SILVER_CANDLES,
    "silver.posts": SILVER_POSTS,
    "silver.tickers": SILVER_TICKERS,
    "silver.tickers_latest": SILVER_TICKERS_LATEST,
    "silver.fear_greed": SILVER_FEAR_GREED,
    "gold.features": GOLD_FEATURES,
    "gold.predictions": GOLD_PREDICTIONS,
    "gold.served_predictions": GOLD_SERVED_PREDICTIONS,
    "gold.paper_trades": GOLD_PAPER_TRADES,
    "gold.paper_equity": GOLD_PAPER_EQUITY,
}
"""Analyst-facing names (``schema.table``) to lake paths, as the DuckDB catalog shows them."""
