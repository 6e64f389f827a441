"""Evaluation on labelled CSVs, its error cases, and the throughput helper."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.sentiment import (
    LexiconSentimentModel,
    evaluate_labelled_csv,
    evaluate_labels,
    read_labelled_csv,
    sentiment_throughput,
)
from warehouse.errors import DataError, SchemaError


@pytest.fixture(scope="module")
def model() -> LexiconSentimentModel:
    return LexiconSentimentModel()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "labelled.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_evaluate_labels_counts() -> None:
    gold = ["positive", "positive", "negative", "neutral", "neutral", "neutral"]
    guess = ["positive", "neutral", "negative", "neutral", "neutral", "positive"]
    evaluation = evaluate_labels(gold, guess, model_name="m")
    assert evaluation.accuracy == pytest.approx(4 / 6)
    assert evaluation.confusion["positive"] == {"positive": 1, "negative": 0, "neutral": 1}
    assert evaluation.confusion["neutral"]["positive"] == 1
    positive = evaluation.per_class["positive"]
    assert (positive.precision, positive.recall, positive.support) == (0.5, 0.5, 2)
    assert evaluation.per_class["negative"].f1 == 1.0
    neutral_f1 = 2 * (2 / 3) * (2 / 3) / (4 / 3)
    assert evaluation.macro_f1 == pytest.approx((0.5 + 1.0 + neutral_f1) / 3)


def test_a_class_never_predicted_has_zero_precision() -> None:
    evaluation = evaluate_labels(["negative", "neutral"], ["neutral", "neutral"], model_name="m")
    assert evaluation.per_class["negative"].precision == 0.0
    assert evaluation.per_class["negative"].f1 == 0.0


def test_evaluate_labelled_csv_round_trip(tmp_path: Path, model: LexiconSentimentModel) -> None:
    path = write(
        tmp_path,
        "id,sentence,label\n"
        '1,"Operating profit rose to EUR 5 mn .",Positive\n'
        "2,The company filed for bankruptcy .,negative\n"
        "3,The meeting is in May .,neutral\n",
    )
    evaluation = evaluate_labelled_csv(path, model)
    assert (evaluation.n, evaluation.accuracy, evaluation.macro_f1) == (3, 1.0, 1.0)
    as_dict = json.loads(json.dumps(evaluation.to_dict()))
    assert as_dict["model_name"] == "lexicon-vader-finance-v1"
    assert as_dict["per_class"]["positive"]["support"] == 1
    assert as_dict["confusion"]["negative"]["negative"] == 1


@pytest.mark.parametrize(
    "text, error, message",
    [
        # a different column name: both expected and found columns are named
        ("text,label\nProfit rose,positive\n", SchemaError, r"sentence,label.*text,label"),
        # a label outside the three
        ("sentence,label\nProfit rose,bullish\n", SchemaError, r"line 2 has label 'bullish'"),
        # an empty file has no header
        ("", SchemaError, r"no header"),
        # a header and nothing else
        ("sentence,label\n", DataError, r"no labelled rows"),
        # a row without text
        ("sentence,label\n,neutral\n", DataError, r"line 2 has an empty sentence"),
    ],
)
def test_bad_csv(
    tmp_path: Path, model: LexiconSentimentModel, text: str, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        evaluate_labelled_csv(write(tmp_path, text), model)


def test_missing_and_undecodable_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_labelled_csv(tmp_path / "nope.csv")
    bad = tmp_path / "latin1.csv"
    bad.write_bytes("sentence,label\nVoitto kasvoi \xe4,positive\n".encode("latin-1"))
    with pytest.raises(DataError, match="UTF-8"):
        read_labelled_csv(bad)


def test_evaluate_labels_needs_matching_lengths() -> None:
    with pytest.raises(DataError, match="2 predictions against 1 gold"):
        evaluate_labels(["neutral"], ["neutral", "neutral"], model_name="m")


def test_throughput_is_measured(model: LexiconSentimentModel) -> None:
    rate = sentiment_throughput(model, ["Profit rose 5 %", "BTC dumped"], seconds=0.05)
    assert rate > 100  # the lexicon model scores thousands of posts per second


@pytest.mark.parametrize(
    "texts, keywords",
    [
        ([], {}),  # nothing to score
        (["x"], {"batch_size": 0}),  # empty batches
        (["x"], {"seconds": 0.0}),  # no time to measure
    ],
)
def test_throughput_rejects_bad_input(
    model: LexiconSentimentModel, texts: list[str], keywords: dict[str, float]
) -> None:
    with pytest.raises(DataError):
        sentiment_throughput(model, texts, **keywords)  # type: ignore[arg-type]
