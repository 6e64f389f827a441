"""`marketlake features` and `marketlake sentiment score|eval`, called through the CLI's main()."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipelines.cli import main
from pipelines.sources.candle_files import iter_candle_messages, read_candle_file
from warehouse.catalog import GOLD_FEATURES
from warehouse.features import feature_columns, target_columns
from warehouse.lake import Lake, read_table

SEVEN_SYMBOLS = "crypto_1h_spot_7symbols_2023-12-01_2023-12-29.csv"
PHRASEBANK = "financial_phrasebank_allagree_sample300.csv"


def test_features_of_a_file_equal_the_gold_rows_of_the_same_candles_landed(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    shared_data: Callable[[str], Path],
    land_candles: Callable[..., Lake],
) -> None:
    source = shared_data(SEVEN_SYMBOLS)
    out = tmp_path / "out" / "eth.parquet"
    assert main(["features", "--file", str(source), "--symbol", "ETHUSDT", "--out", str(out)]) == 0
    assert "wrote 696 rows" in capsys.readouterr().out
    from_file = pl.read_parquet(out)
    assert from_file.columns == ["symbol", "ts", *feature_columns(), *target_columns()]

    # the same candles through Kafka-shaped bronze, silver and gold give the same rows
    lake = Lake(str(tmp_path / "lake"))
    land_candles(lake, iter_candle_messages(read_candle_file(source, symbol="ETHUSDT")))
    gold = read_table(lake.location(GOLD_FEATURES)).select(from_file.columns).sort("symbol", "ts")
    assert_frame_equal(from_file, gold)


@pytest.mark.parametrize(
    ("content", "symbol", "message"),
    [
        # daily bars cannot give hourly features
        ("open_time,open,high,low,close,volume\n"
         "2024-01-01,1,2,0.5,1.5,10\n2024-01-02,1.5,2,1,1.8,10\n2024-01-03,1.8,2,1,1.2,10\n",
         "BTCUSDT", "no candles of 1h or finer"),
        # a file without a symbol column needs --symbol
        ("open_time,open,high,low,close,volume\n2024-01-01 00:00,1,2,0.5,1.5,10\n", None, "symbol"),
    ],
)  # fmt: skip
def test_features_refuses_files_it_cannot_use(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
    symbol: str | None,
    message: str,
) -> None:
    path = tmp_path / "candles.csv"
    path.write_text(content, encoding="utf-8")
    argv = ["features", "--file", str(path), "--out", str(tmp_path / "x.parquet")]
    assert main(argv + (["--symbol", symbol] if symbol else [])) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.parquet").exists()


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Net profit rose 35% and revenue beat expectations", "positive"),  # gains
        ("Bitcoin plunges after exchange hack wipes out reserves", "negative"),  # a crash
        ("The company will publish its annual report on March 3", "neutral"),  # a plain fact
    ],
)
def test_sentiment_score_json(text: str, label: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sentiment", "score", text, "--model", "lexicon", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["label"] == label and body["text"] == text
    assert -1 <= body["score"] <= 1 and 0 <= body["confidence"] <= 1
    assert body["model"].startswith("lexicon")


def test_sentiment_score_prints_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sentiment", "score", "Shares soared", "--model", "lexicon"]) == 0
    assert capsys.readouterr().out.startswith("positive score=+")


def test_sentiment_eval_on_a_labelled_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "labelled.csv"
    path.write_text(
        "sentence,label\n"
        "Operating profit rose sharply,positive\n"
        "Sales fell and the company reported a loss,negative\n"
        "The meeting is scheduled for Tuesday,neutral\n",
        encoding="utf-8",
    )
    assert main(["sentiment", "eval", "--file", str(path), "--model", "lexicon", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["n"] == 3
    assert {"accuracy", "macro_f1", "model", "confusion", "per_class"} <= set(body)
    assert sum(sum(row.values()) for row in body["confusion"].values()) == 3

    assert main(["sentiment", "eval", "--file", str(path), "--model", "lexicon"]) == 0
    text = capsys.readouterr().out
    assert "macro-F1:" in text and "confusion (rows: gold, columns: predicted)" in text


def test_sentiment_eval_reports_a_bad_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("sentence,label\nProfit rose,great\n", encoding="utf-8")
    assert main(["sentiment", "eval", "--file", str(path), "--model", "lexicon"]) == 2
    assert "label 'great'" in capsys.readouterr().err


def test_lexicon_meets_the_target_on_the_phrasebank_sample(
    capsys: pytest.CaptureFixture[str], shared_data: Callable[[str], Path]
) -> None:
    path = shared_data(PHRASEBANK)
    assert main(["sentiment", "eval", "--file", str(path), "--model", "lexicon", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["n"] == 300
    assert body["macro_f1"] >= 0.70  # the target for the offline model
