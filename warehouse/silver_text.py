"""Silver posts, tickers and Fear & Greed: bronze deduplicated on natural keys, posts scored.

* ``silver/posts``: one row per ``post_id`` (the copy landed last wins), symbols normalised
  (upper case, ``$``/``#`` stripped, unique, sorted), and a sentiment ``score`` in [-1, 1],
  ``label``, ``confidence`` and the ``sentiment_model`` that produced them stored beside each post.
  A re-run scores only the posts that are not in silver yet; rows already scored are kept as
  they are (a model change does not silently rewrite history).
* ``silver/tickers``: the snapshot history, one row per ``(symbol, ts)``; and
  ``silver/tickers_latest``: the newest snapshot of each symbol.
* ``silver/fear_greed``: one value per UTC day, the first one published that day (so a later
  intraday update never rewrites hours that already saw the earlier value), with its publication
  time ``ts`` kept for the point-in-time join.

The scoring model is passed in (anything with ``name`` and ``score(texts)``, such as the models
of ``training.sentiment``): this package never imports ``training``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

import polars as pl

from warehouse.errors import DataError, SchemaError

LANDING_ORDER = ("ingested_at", "kafka_partition", "kafka_offset")
"""Bronze columns that order copies of one record: the last landed copy wins."""

POST_COLUMNS = [
    "post_id",
    "platform",
    "author",
    "text",
    "ts",
    "symbols",
    "likes",
    "reposts",
    "replies",
    "followers",
    "source",
    "ingested_at",
]
SCORE_COLUMNS = ["score", "label", "confidence", "sentiment_model", "scored_at"]
SILVER_POST_COLUMNS = [*POST_COLUMNS, *SCORE_COLUMNS]
TICKER_COLUMNS = ["symbol", "ts", "price", "market_cap", "volume_24h", "change_24h_pct", "source"]
FEAR_GREED_COLUMNS = ["date", "ts", "value", "classification", "source"]

SCORE_BATCH = 256
"""Posts per call of the sentiment model (bounds memory; FinBERT batches inside it again)."""


class ScoredText(Protocol):
    """One model output: ``score`` in [-1, 1], a ``label`` and a ``confidence``."""

    score: float
    label: str
    confidence: float


class PostScorer(Protocol):
    """What silver needs from a sentiment model (``training.sentiment.SentimentModel`` fits)."""

    name: str

    def score(self, texts: Sequence[str]) -> Sequence[ScoredText]:
        """Score each text; one result per text, in order."""
        ...


def _require(frame: pl.DataFrame, what: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SchemaError(f"{what} lack column(s) {missing}; they have {frame.columns}")


def latest_landed(bronze: pl.DataFrame, keys: Sequence[str]) -> pl.DataFrame:
    """One row per ``keys``: the copy landed last (by ingestion time, partition, offset)."""
    order = [c for c in LANDING_ORDER if c in bronze.columns]
    frame = bronze.sort(order) if order else bronze
    return frame.unique(subset=list(keys), keep="last", maintain_order=True)


def normalised_symbols(symbols: pl.Expr) -> pl.Expr:
    """A ``list[str]`` expression upper-cased, stripped of spaces, ``$`` and ``#``, unique, sorted.

    Empty entries are dropped and a null list becomes an empty one.
    """
    cleaned = symbols.list.eval(
        pl.element().str.strip_chars().str.strip_chars_start("$#").str.to_uppercase()
    )
    return (
        cleaned.list.eval(pl.element().filter(pl.element().str.len_chars() > 0))
        .list.unique()
        .list.sort()
        .fill_null(pl.lit([], dtype=pl.List(pl.String)))
    )


def deduplicate_posts(bronze: pl.DataFrame) -> pl.DataFrame:
    """Bronze posts to one row per ``post_id`` with normalised symbols, sorted by ``ts``."""
    _require(bronze, "bronze posts", ["post_id", "text", "ts", "symbols"])
    posts = latest_landed(bronze.filter(pl.col("post_id").is_not_null()), ["post_id"])
    present = [c for c in POST_COLUMNS if c in posts.columns]
    return (
        posts.select(present)
        .with_columns(normalised_symbols(pl.col("symbols")).alias("symbols"))
        .sort("ts", "post_id")
    )


def score_posts(
    posts: pl.DataFrame,
    model: PostScorer,
    *,
    batch_size: int = SCORE_BATCH,
    on_batch: Callable[[int], None] | None = None,
    scored_at: datetime | None = None,
) -> pl.DataFrame:
    """Add ``score, label, confidence, sentiment_model, scored_at`` to ``posts``.

    Args:
        posts: rows with a ``text`` column.
        model: the sentiment model; its ``name`` is stored in ``sentiment_model``.
        batch_size: texts per ``model.score`` call; default :data:`SCORE_BATCH`.
        on_batch: called with the number of posts of each scored batch (progress); default None.
        scored_at: the time stored in ``scored_at``; ``None`` means now (UTC).

    Returns:
        ``posts`` with the score columns appended.

    Raises:
        DataError: the model returned a different number of scores than it got texts.
    """
    if batch_size <= 0:
        raise DataError(f"batch_size must be > 0, got {batch_size}")
    texts = posts["text"].fill_null("").to_list()
    scores: list[float] = []
    labels: list[str] = []
    confidences: list[float] = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        results = list(model.score(batch))
        if len(results) != len(batch):
            raise DataError(
                f"sentiment model {model.name} returned {len(results)} scores for "
                f"{len(batch)} texts"
            )
        scores += [float(r.score) for r in results]
        labels += [str(r.label) for r in results]
        confidences += [float(r.confidence) for r in results]
        if on_batch is not None:
            on_batch(len(batch))
    when = scored_at or datetime.now(UTC)
    return posts.with_columns(
        pl.Series("score", scores, dtype=pl.Float64),
        pl.Series("label", labels, dtype=pl.String),
        pl.Series("confidence", confidences, dtype=pl.Float64),
        pl.lit(model.name, dtype=pl.String).alias("sentiment_model"),
        pl.lit(when).cast(pl.Datetime("ms", "UTC")).alias("scored_at"),
    )


def new_posts(bronze: pl.DataFrame, existing_ids: pl.Series | None) -> pl.DataFrame:
    """The deduplicated bronze posts whose ``post_id`` is not in ``existing_ids`` (None: all)."""
    posts = deduplicate_posts(bronze)
    if existing_ids is None or existing_ids.is_empty():
        return posts
    return posts.filter(~pl.col("post_id").is_in(existing_ids.implode()))


def build_silver_tickers(bronze: pl.DataFrame) -> pl.DataFrame:
    """Ticker history: one row per ``(symbol, ts)`` (the copy landed last), sorted."""
    _require(bronze, "bronze tickers", ["symbol", "ts", "price"])
    present = [c for c in TICKER_COLUMNS if c in bronze.columns]
    history = latest_landed(bronze, ["symbol", "ts"]).select(present)
    return history.with_columns(pl.col("symbol").str.to_uppercase()).sort("symbol", "ts")


def latest_tickers(history: pl.DataFrame) -> pl.DataFrame:
    """The newest snapshot per symbol of a ticker history, sorted by symbol."""
    return history.sort("symbol", "ts").unique(subset=["symbol"], keep="last").sort("symbol")


def build_silver_fear_greed(bronze: pl.DataFrame) -> pl.DataFrame:
    """One Fear & Greed value per UTC ``date``: the first published that day, sorted.

    Copies of one publication (same ``ts``) resolve to the copy landed last (a correction).
    """
    _require(bronze, "bronze fear & greed", ["ts", "value", "classification"])
    rows = latest_landed(bronze.filter(pl.col("ts").is_not_null()), ["ts"])
    present = [c for c in FEAR_GREED_COLUMNS if c in rows.columns or c == "date"]
    return (
        rows.with_columns(pl.col("ts").dt.date().alias("date"))
        .sort("ts")
        .unique(subset=["date"], keep="first", maintain_order=True)
        .select(present)
    )
