"""Text sentiment behind ``POST /sentiment``, with the real offline lexicon model."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from serving.text_sentiment import (
    MAX_TEXT_CHARS,
    MAX_TEXTS,
    SentimentRequest,
    TextSentimentService,
)
from training.sentiment import LexiconSentimentModel
from warehouse.settings import load_settings


@pytest.fixture(scope="module")
def sentiment() -> TextSentimentService:
    return TextSentimentService(LexiconSentimentModel())


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Bitcoin rallies to a record high as ETF inflows surge", "positive"),  # bullish news
        ("Exchange hacked, withdrawals halted, prices crash", "negative"),  # bearish news
        ("The market opens at nine", "neutral"),  # no sentiment
    ],
)
def test_each_text_gets_a_score_label_and_confidence(
    sentiment: TextSentimentService, text: str, label: str
) -> None:
    answer = sentiment.score(SentimentRequest(texts=[text]))
    [result] = answer.results
    assert result.label == label
    assert -1.0 <= result.score <= 1.0 and 0.0 <= result.confidence <= 1.0
    if label != "neutral":
        assert (result.score > 0) == (label == "positive")
    assert answer.model == sentiment.model.name and answer.model.startswith("lexicon")


def test_results_keep_the_request_order(sentiment: TextSentimentService) -> None:
    texts = ["prices crash", "prices soar", "prices crash"]
    labels = [r.label for r in sentiment.score(SentimentRequest(texts=texts)).results]
    assert labels == ["negative", "positive", "negative"]


def test_the_largest_request_is_accepted(sentiment: TextSentimentService) -> None:
    texts = ["x" * MAX_TEXT_CHARS] * MAX_TEXTS
    assert len(sentiment.score(SentimentRequest(texts=texts)).results) == MAX_TEXTS


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"texts": []}, "texts"),  # no text
        ({"texts": [""]}, "texts.0"),  # empty text
        ({"texts": ["ok", "x" * (MAX_TEXT_CHARS + 1)]}, "texts.1"),  # text too long
        ({"texts": ["ok"] * (MAX_TEXTS + 1)}, "texts"),  # too many texts
        ({"texts": "one string"}, "texts"),  # not a list
        ({}, "texts"),  # missing field
        ({"texts": ["ok"], "model": "finbert"}, "model"),  # unknown field (extra="forbid")
    ],
)
def test_bad_bodies_are_rejected_naming_the_field(body: dict[str, object], named: str) -> None:
    with pytest.raises(ValidationError) as error:
        SentimentRequest.model_validate(body)
    assert named in str(error.value)


@pytest.mark.parametrize(
    ("environ", "model"),
    [
        ({}, "auto"),  # unset: FinBERT when present, else the lexicon
        ({"MARKETLAKE_SENTIMENT_MODEL": " Lexicon "}, "lexicon"),  # trimmed, case-insensitive
    ],
)
def test_sentiment_model_setting(environ: dict[str, str], model: str) -> None:
    assert load_settings(environ).sentiment_model == model
