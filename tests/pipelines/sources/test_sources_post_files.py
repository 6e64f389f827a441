"""Post and headline files -> valid ``social.posts`` messages; the symbol extraction table."""

from __future__ import annotations

import pytest

from pipelines.sources.post_files import (
    detect_post_layout,
    headline_post_id,
    iter_post_messages,
    read_posts,
)
from pipelines.sources.symbols import base_of_tag, extract_symbols
from warehouse.errors import SourceError
from warehouse.topics import validate_post

TWEETS = "bitcoin_tweets_2021-11-10.csv"
NEWS = "crypto_news_tweets_coindesk_cointelegraph_2017.csv"
REUTERS = "reuters_bitcoin_headlines.csv"


@pytest.mark.parametrize(
    ("name", "rows", "platform", "first_id", "first_ts"),
    [
        # 43 minutes of "bitcoin" tweets with engagement counts
        (TWEETS, 2_137, "twitter", "1458358788675837956", 1_636_534_804_000),
        # CoinDesk / Cointelegraph tweets of 2017, naive UTC times
        (NEWS, 6_445, "twitter", "890619308132319232", 1_501_175_164_000),
        # Reuters headlines with a hashed id, times with milliseconds and an offset
        (REUTERS, 2_260, "reuters", "reuters:", 1_611_907_287_633),
    ],
)
def test_real_files_give_valid_posts(
    shared_data_dir, name, rows, platform, first_id, first_ts
) -> None:
    posts = read_posts(shared_data_dir / name)
    assert len(posts) == rows
    assert len({p["post_id"] for p in posts}) == rows  # ids are unique
    for post in posts:
        validate_post(post)
        assert post["platform"] == platform
        assert post["source"] == f"file:{name}"
    assert posts[0]["post_id"].startswith(first_id)
    assert posts[0]["ts"] == first_ts
    # every file mentions bitcoin somewhere, and the extraction finds it
    assert sum("BTCUSDT" in p["symbols"] for p in posts) > rows // 20


def test_tweet_stream_fields(shared_data_dir) -> None:
    first = next(iter_post_messages(shared_data_dir / TWEETS))
    assert first["symbols"] == ["BTCUSDT"]  # #Bitcoin $BTC $XBT $BTCCAD
    assert (first["likes"], first["reposts"], first["followers"]) == (0, 0, 283)
    assert first["author"] is None and first["replies"] is None
    assert first["text"].startswith("#Bitcoin price in Canadian Dollar")


def test_tweet_text_is_html_unescaped(shared_data_dir) -> None:
    posts = read_posts(shared_data_dir / NEWS) + read_posts(shared_data_dir / TWEETS)
    # ~200 raw texts hold "&amp;"; one tweet was escaped twice by the tool that posted it
    assert sum("&amp;" in p["text"] for p in posts) == 1
    assert any(" & " in p["text"] for p in posts)


def test_account_tweets_carry_the_account_as_author(shared_data_dir) -> None:
    authors = {p["author"] for p in read_posts(shared_data_dir / NEWS)}
    assert authors == {"Cointelegraph", "coindesk"}


def test_headlines_join_title_and_subheadline_with_a_stable_id(shared_data_dir) -> None:
    first, *_ = read_posts(shared_data_dir / REUTERS)
    title = "From broker notes to memes: how the stock market went viral"
    assert first["text"].startswith(title + "\n\n")
    assert first["post_id"] == headline_post_id(1_611_907_287_633, title)
    assert first["post_id"] == read_posts(shared_data_dir / REUTERS)[0]["post_id"]  # re-read: same


@pytest.mark.parametrize(
    ("text", "symbols"),
    [
        ("#Bitcoin price in Canadian Dollar $BTC $XBT $BTCCAD", ["BTCUSDT"]),  # tags + pair + alias
        ("Ether and bitcoins rallied", ["BTCUSDT", "ETHUSDT"]),  # names, plural, any case
        ("Bitcoin Cash forks again", ["BCHUSDT"]),  # the longer name wins over "bitcoin"
        ("Ethereum Classic vs Ethereum", ["ETCUSDT", "ETHUSDT"]),  # both, each once
        ("$eth $doge $shib $ada $sol", ["ADAUSDT", "DOGEUSDT", "ETHUSDT", "SHIBUSDT", "SOLUSDT"]),
        ("$BTC.X $ETH.X $XRP.X", ["BTCUSDT", "ETHUSDT", "XRPUSDT"]),  # StockTwits suffix
        ("$BTCUSD and $ETHBTC", ["BTCUSDT", "ETHUSDT"]),  # pairs map to their base
        ("BTC and ETH up, SOL down", ["BTCUSDT", "ETHUSDT", "SOLUSDT"]),  # capital tickers
        ("btc and eth in lower case", []),  # bare lower-case tickers are ordinary words
        ("click the LINK, DOT the i, ETC", []),  # ambiguous bare tickers need $ or #
        ("$LINK #DOT", ["DOTUSDT", "LINKUSDT"]),  # ... and are found with them
        (
            "Binance coin and Solana, Ripple, Cardano, Dogecoin",
            ["ADAUSDT", "BNBUSDT", "DOGEUSDT", "SOLUSDT", "XRPUSDT"],
        ),
        ("Binance exchange fined", []),  # the exchange is not its coin
        ("#BinanceCoin #ShibaInu", ["BNBUSDT", "SHIBUSDT"]),  # multi-word names as one tag
        ("$AU $BORING $1.40 fee", []),  # unknown tickers and prices are ignored
        ("@bitcoin_BTFD said hi", []),  # part of a handle is no mention
        ("Stocks, oil rise in Asia", []),  # nothing crypto
    ],
)
def test_symbol_extraction(text, symbols) -> None:
    assert extract_symbols(text) == symbols


@pytest.mark.parametrize(
    ("tag", "base"),
    [
        ("btc", "BTC"),  # ticker, lower case
        ("XBT", "BTC"),  # alias
        ("Ethereum", "ETH"),  # name as a tag
        ("BTCUSDT", "BTC"),  # exchange pair
        ("DOGEUSD", "DOGE"),  # fiat pair
        ("USDT", None),  # a quote currency alone is no asset here
        ("BTCXYZ", None),  # unknown quote
    ],
)
def test_base_of_tag(tag, base) -> None:
    assert base_of_tag(tag) == base


def test_quote_is_configurable() -> None:
    assert extract_symbols("bitcoin", quote="USD") == ["BTCUSD"]


@pytest.mark.parametrize(
    "header",
    [
        "sentence,label",  # the phrasebank: labelled sentences, not posts
        "id,body,when",  # an unknown dump
        "tweet_id_str,tweet_full_text",  # a tweet file without its time column
    ],
)
def test_unknown_layouts_raise_naming_the_columns(tmp_path, header) -> None:
    path = tmp_path / "posts.csv"
    path.write_text(header + "\n")
    with pytest.raises(SourceError) as info:
        read_posts(path)
    assert "unknown post layout" in str(info.value)
    assert all(column in str(info.value) for column in header.split(","))


def test_layout_detection_ignores_case_and_extra_columns() -> None:
    assert detect_post_layout(["Timestamp", "Title", "url"]).name == "headlines"


def test_an_unreadable_time_names_the_line(tmp_path) -> None:
    path = tmp_path / "news.csv"
    path.write_text(
        "created_at,account,tweet_id,text\n"
        "2017-07-27 17:06:04,coindesk,1,fine\n"
        "last tuesday,coindesk,2,broken\n"
    )
    with pytest.raises(SourceError, match=r"line 3.*last tuesday"):
        read_posts(path)


def test_an_empty_id_is_an_error(tmp_path) -> None:
    path = tmp_path / "news.csv"
    path.write_text("created_at,account,tweet_id,text\n2017-07-27 17:06:04,coindesk,,hello\n")
    with pytest.raises(SourceError, match="line 2: the post id is empty"):
        read_posts(path)
