"""Post and headline files -> ``social.posts`` messages.

Layouts, detected from the header (the first whose required columns are all present):

=================  =========================================================  ==========
layout             required columns (others used when present)                platform
=================  =========================================================  ==========
``tweet_stream``   ``tweet_created_at, tweet_id_str, tweet_full_text``        twitter
                   (+ ``tweet_entities_hashtags, tweet_entities_symbols,
                   tweet_retweet_count, tweet_favorite_count,
                   user_followers_count``)
``account_tweets`` ``created_at, account, tweet_id, text``                    twitter
``headlines``      ``timestamp, title`` (+ ``subheadline``)                   reuters
=================  =========================================================  ==========

Fields: ``post_id`` is the tweet id, or for headlines ``reuters:`` + the first 20 hex digits of
SHA-256 over ``"<ts ms>|<title>"`` (stable across re-reads and time formats); ``author`` is the
account (``None`` where the file has none); tweet text is HTML-unescaped (``&amp;`` -> ``&``);
a headline's text is the title, a blank line and the subheadline; ``symbols`` come from
:func:`pipelines.sources.symbols.extract_symbols` over the text and the entity columns;
``likes``/``reposts``/``followers`` are the file's counts (``None`` where absent). Times without
an offset are UTC. A row whose id, time or count cannot be read raises :class:`SourceError`
naming the line; semantic checks (empty text, time range) are the landing step's validator's.
"""

from __future__ import annotations

import csv
import hashlib
import html
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pipelines.sources.event_time import text_to_ms
from pipelines.sources.symbols import extract_symbols
from warehouse.errors import SourceError
from warehouse.topics import Record

Row = Mapping[str, str | None]


@dataclass(frozen=True)
class PostLayout:
    """One file layout: the columns that identify it and how a row becomes a message."""

    name: str
    required: tuple[str, ...]
    to_message: Callable[[Row, str], Record]


def _count(row: Row, column: str) -> int | None:
    value = (row.get(column) or "").strip()
    if not value:
        return None
    try:
        return int(float(value))
    except ValueError:
        raise SourceError(f"column '{column}' is not a count: {value!r}") from None


def _tweet_stream(row: Row, source: str) -> Record:
    text = html.unescape(row["tweet_full_text"] or "")
    entities = (
        f"{row.get('tweet_entities_hashtags') or ''} {row.get('tweet_entities_symbols') or ''}"
    )
    return {
        "post_id": (row["tweet_id_str"] or "").strip(),
        "platform": "twitter",
        "author": None,
        "text": text,
        "ts": text_to_ms(row["tweet_created_at"] or ""),
        "symbols": extract_symbols(f"{text} {entities}"),
        "likes": _count(row, "tweet_favorite_count"),
        "reposts": _count(row, "tweet_retweet_count"),
        "replies": None,
        "followers": _count(row, "user_followers_count"),
        "source": source,
    }


def _account_tweets(row: Row, source: str) -> Record:
    text = html.unescape(row["text"] or "")
    return {
        "post_id": (row["tweet_id"] or "").strip(),
        "platform": "twitter",
        "author": (row["account"] or "").strip() or None,
        "text": text,
        "ts": text_to_ms(row["created_at"] or ""),
        "symbols": extract_symbols(text),
        "likes": None,
        "reposts": None,
        "replies": None,
        "followers": None,
        "source": source,
    }


def headline_post_id(ts_ms: int, title: str, *, platform: str = "reuters") -> str:
    """The stable id of a headline: ``<platform>:`` + 20 hex digits of SHA-256(ts|title)."""
    digest = hashlib.sha256(f"{ts_ms}|{title.strip()}".encode()).hexdigest()
    return f"{platform}:{digest[:20]}"


def _headlines(row: Row, source: str) -> Record:
    title = (row["title"] or "").strip()
    sub = (row.get("subheadline") or "").strip()
    ts = text_to_ms(row["timestamp"] or "")
    text = f"{title}\n\n{sub}" if sub else title
    return {
        "post_id": headline_post_id(ts, title),
        "platform": "reuters",
        "author": None,
        "text": text,
        "ts": ts,
        "symbols": extract_symbols(text),
        "likes": None,
        "reposts": None,
        "replies": None,
        "followers": None,
        "source": source,
    }


POST_LAYOUTS: tuple[PostLayout, ...] = (
    PostLayout(
        "tweet_stream", ("tweet_created_at", "tweet_id_str", "tweet_full_text"), _tweet_stream
    ),
    PostLayout("account_tweets", ("created_at", "account", "tweet_id", "text"), _account_tweets),
    PostLayout("headlines", ("timestamp", "title"), _headlines),
)


def detect_post_layout(columns: list[str], *, path: Path | str = "<file>") -> PostLayout:
    """Pick the layout of a header (see the module docstring).

    Raises:
        SourceError: no layout fits; the message lists the columns found and each layout's.
    """
    names = {c.strip().lower() for c in columns}
    for layout in POST_LAYOUTS:
        if names.issuperset(layout.required):
            return layout
    expected = "; ".join(f"{lay.name}: {', '.join(lay.required)}" for lay in POST_LAYOUTS)
    raise SourceError(f"{path}: unknown post layout, columns {columns}; expected {expected}")


def iter_post_messages(path: Path | str) -> Iterator[Record]:
    """Yield one ``social.posts`` message per data row of a post file, in file order.

    Args:
        path: A CSV file in one of the layouts of the module docstring.

    Raises:
        SourceError: missing file, unknown layout, or a row whose id/time/count is unreadable
            (the message names the file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"post file {path} does not exist")
    source = f"file:{path.name}"
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        layout = detect_post_layout(list(reader.fieldnames or []), path=path)
        for row in reader:
            clean = {(k or "").strip().lower(): v for k, v in row.items()}
            try:
                message = layout.to_message(clean, source)
            except SourceError as exc:
                raise SourceError(f"{path} line {reader.line_num}: {exc}") from None
            if not message["post_id"]:
                raise SourceError(f"{path} line {reader.line_num}: the post id is empty")
            yield message


def read_posts(path: Path | str) -> list[Record]:
    """All ``social.posts`` messages of a post file (see :func:`iter_post_messages`)."""
    return list(iter_post_messages(path))
