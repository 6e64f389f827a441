"""The sentiment contract: SentimentScore and scores built from class probabilities."""

from __future__ import annotations

import pytest

from training.sentiment import (
    LexiconSentimentModel,
    SentimentModel,
    SentimentScore,
    score_from_probabilities,
)
from warehouse.errors import ModelError


@pytest.mark.parametrize(
    "probabilities, score, label, confidence",
    [
        # FinBERT's order; positive wins
        ({"positive": 0.7, "negative": 0.1, "neutral": 0.2}, 0.6, "positive", 0.7),
        # negative wins
        ({"positive": 0.05, "negative": 0.9, "neutral": 0.05}, -0.85, "negative", 0.9),
        # neutral wins though positive beats negative: the score still leans positive
        ({"positive": 0.3, "negative": 0.1, "neutral": 0.6}, 0.2, "neutral", 0.6),
        # a three-way tie goes to neutral
        ({"positive": 1 / 3, "negative": 1 / 3, "neutral": 1 / 3}, 0.0, "neutral", 1 / 3),
    ],
)
def test_score_from_probabilities(
    probabilities: dict[str, float], score: float, label: str, confidence: float
) -> None:
    result = score_from_probabilities(probabilities)
    assert result.score == pytest.approx(score)
    assert (result.label, result.confidence) == (label, pytest.approx(confidence))


@pytest.mark.parametrize(
    "probabilities, message",
    [
        ({"positive": 0.5, "negative": 0.5}, "lack label"),  # neutral missing
        ({"positive": 0.5, "negative": 0.5, "neutral": 0.5}, "sum to 1.5"),  # not a distribution
    ],
)
def test_bad_probabilities(probabilities: dict[str, float], message: str) -> None:
    with pytest.raises(ModelError, match=message):
        score_from_probabilities(probabilities)


@pytest.mark.parametrize(
    "fields",
    [
        {"score": 1.5, "label": "positive", "confidence": 0.9},  # score above 1
        {"score": float("nan"), "label": "neutral", "confidence": 0.9},  # not a number
        {"score": 0.1, "label": "bullish", "confidence": 0.9},  # unknown label
        {"score": 0.1, "label": "neutral", "confidence": 1.2},  # confidence above 1
    ],
)
def test_sentiment_score_validates(fields: dict[str, float | str]) -> None:
    with pytest.raises(ModelError):
        SentimentScore(**fields)  # type: ignore[arg-type]


def test_sentiment_score_is_frozen_and_serialisable() -> None:
    score = SentimentScore(score=-0.25, label="negative", confidence=0.6)
    assert score.to_dict() == {"score": -0.25, "label": "negative", "confidence": 0.6}
    with pytest.raises(AttributeError):
        score.score = 0.0  # type: ignore[misc]


def test_lexicon_model_satisfies_the_protocol() -> None:
    assert isinstance(LexiconSentimentModel(), SentimentModel)
