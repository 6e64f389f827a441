"""Score texts with the sentiment model the service loaded at start-up (``POST /sentiment``).

The model is any :class:`training.sentiment.SentimentModel`: FinBERT when its weights are on the
machine, else the offline VADER + finance lexicon model (``load_sentiment_model("auto")``).
"""

from __future__ import annotations

import threading
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from training.sentiment import SentimentModel

MAX_TEXTS = 256
"""Texts per request."""
MAX_TEXT_CHARS = 2000
"""Characters per text."""

Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]


class SentimentRequest(BaseModel):
    """``POST /sentiment`` body: 1 to 256 texts of 1 to 2000 characters each."""

    model_config = ConfigDict(extra="forbid")

    texts: list[Text] = Field(
        min_length=1,
        max_length=MAX_TEXTS,
        examples=[["BTC breaks out to a new all-time high", "Exchange hacked, withdrawals halted"]],
    )


class TextSentiment(BaseModel):
    """The sentiment of one text: ``score`` = P(positive) - P(negative) in [-1, 1]."""

    score: float
    label: str
    confidence: float


class SentimentResponse(BaseModel):
    """One score per text, in request order, and the model (with version) that scored them."""

    model: str
    results: list[TextSentiment]


class TextSentimentService:
    """Scores texts with one model; calls are serialised (a transformer is not thread-safe).

    Args:
        model: the sentiment model, e.g. ``load_sentiment_model("auto")``.
    """

    def __init__(self, model: SentimentModel) -> None:
        self.model = model
        self._lock = threading.Lock()

    def score(self, request: SentimentRequest) -> SentimentResponse:
        """Score every text of ``request``."""
        with self._lock:
            scores = self.model.score(request.texts)
        return SentimentResponse(
            model=self.model.name,
            results=[
                TextSentiment(score=s.score, label=s.label, confidence=s.confidence) for s in scores
            ],
        )
