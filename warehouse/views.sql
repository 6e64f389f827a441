-- The analyst catalog of the lake: one DuckDB view per Delta table, in schemas bronze, silver, gold.
--
-- warehouse/analyst.py (open_catalog) runs this file: it replaces {{lake}} with the lake root
-- (a local path or s3://bucket/prefix) and creates each view whose Delta table exists; a table
-- not materialized yet gets no view (main.marketlake_tables lists it with exists = false).
-- Views read through the delta extension (delta_scan), offline, from the
-- duckdb-extension-delta wheel; when it cannot load (an S3 lake without the httpfs extension),
-- each delta_scan('{{lake}}/<path>') is served from deltalake's Arrow dataset of the table
-- instead. A table of warehouse/catalog.py TABLES missing here gets a plain view of all its
-- columns. Rules of this file: one statement per view, `-- view: schema.table` before it,
-- and the table read as delta_scan('{{lake}}/<path>') exactly once.
--
-- Time travel: `marketlake sql --version-of gold.features=3 QUERY` pins a view to a Delta
-- version; in SQL, delta_scan('<uri>', version := 3) with the uri that main.marketlake_tables
-- lists; in Python, warehouse.analyst.table_as_of(con, "gold.features", version=3).

CREATE SCHEMA IF NOT EXISTS bronze;
CREATE SCHEMA IF NOT EXISTS silver;
CREATE SCHEMA IF NOT EXISTS gold;

-- view: bronze.candles
-- OHLCV bars exactly as they arrived from market.candles, with the Kafka bookkeeping columns.
CREATE OR REPLACE VIEW bronze.candles AS
SELECT * FROM delta_scan('{{lake}}/bronze/candles');

-- view: bronze.tickers
-- Spot snapshots from market.tickers.
CREATE OR REPLACE VIEW bronze.tickers AS
SELECT * FROM delta_scan('{{lake}}/bronze/tickers');

-- view: bronze.posts
-- Posts and headlines from social.posts, unscored.
CREATE OR REPLACE VIEW bronze.posts AS
SELECT * FROM delta_scan('{{lake}}/bronze/posts');

-- view: bronze.fear_greed
-- The Fear & Greed index as published.
CREATE OR REPLACE VIEW bronze.fear_greed AS
SELECT * FROM delta_scan('{{lake}}/bronze/fear_greed');

-- view: bronze.rejects
-- Records that failed validation: topic, partition, offset, raw bytes and the reason.
CREATE OR REPLACE VIEW bronze.rejects AS
SELECT * FROM delta_scan('{{lake}}/bronze/_rejects');

-- view: silver.candles
-- Hourly candles, deduplicated on (symbol, interval, open_time), gaps flagged in gap_before.
CREATE OR REPLACE VIEW silver.candles AS
SELECT * FROM delta_scan('{{lake}}/silver/candles');

-- view: silver.tickers
-- Ticker snapshots, deduplicated.
CREATE OR REPLACE VIEW silver.tickers AS
SELECT * FROM delta_scan('{{lake}}/silver/tickers');

-- view: silver.tickers_latest
-- The latest ticker per symbol.
CREATE OR REPLACE VIEW silver.tickers_latest AS
SELECT * FROM delta_scan('{{lake}}/silver/tickers_latest');

-- view: silver.posts
-- Posts deduplicated, symbols resolved, scored: score in [-1, 1], label, confidence, model.
CREATE OR REPLACE VIEW silver.posts AS
SELECT * FROM delta_scan('{{lake}}/silver/posts');

-- view: silver.fear_greed
-- The Fear & Greed index, one row per publication.
CREATE OR REPLACE VIEW silver.fear_greed AS
SELECT * FROM delta_scan('{{lake}}/silver/fear_greed');

-- view: gold.features
-- One row per (symbol, ts): the feature spec of warehouse/feature_spec.py and target_* columns.
CREATE OR REPLACE VIEW gold.features AS
SELECT * FROM delta_scan('{{lake}}/gold/features');

-- view: gold.predictions
-- Every served or batch prediction with model version, horizon and time.
CREATE OR REPLACE VIEW gold.predictions AS
SELECT * FROM delta_scan('{{lake}}/gold/predictions');

-- view: gold.paper_trades
-- The paper-trading ledger's fills: the signal hour, the fill at the next bar's open, the
-- position change, price, fee (fee + slippage per unit, in bp and in equity) and model version.
CREATE OR REPLACE VIEW gold.paper_trades AS
SELECT * FROM delta_scan('{{lake}}/gold/paper_trades');

-- view: gold.paper_equity
-- The ledger marked at each bar's close: per symbol and for the portfolio (symbol '_portfolio'),
-- equity from 1.0, buy-and-hold over the same span, drawdowns, position.
CREATE OR REPLACE VIEW gold.paper_equity AS
SELECT * FROM delta_scan('{{lake}}/gold/paper_equity');
