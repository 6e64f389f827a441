"""The sentiment contract every model follows: a score in [-1, 1], a label and a confidence.

A model turns texts into :class:`SentimentScore` values; ``score`` is P(positive) - P(negative)
(or the lexicon model's equivalent), ``label`` is one of :data:`SENTIMENT_LABELS`, and
``confidence`` in [0, 1] says how sure the model is of that label. The model's ``name`` names the
model and its version and is stored beside every score in the lake.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from warehouse.errors import ModelError

POSITIVE = "positive"
NEGATIVE = "negative"
NEUTRAL = "neutral"
SENTIMENT_LABELS: tuple[str, ...] = (POSITIVE, NEGATIVE, NEUTRAL)


@dataclass(frozen=True)
class SentimentScore:
    """The sentiment of one text.

    Attributes:
        score: P(positive) - P(negative), in [-1, 1].
        label: one of ``positive``, ``negative``, ``neutral``.
        confidence: how sure the model is of ``label``, in [0, 1].
    """

    score: float
    label: str
    confidence: float

    def __post_init__(self) -> None:
        if self.label not in SENTIMENT_LABELS:
            raise ModelError(
                f"sentiment label {self.label!r} is not one of {', '.join(SENTIMENT_LABELS)}"
            )
        if not (math.isfinite(self.score) and -1.0 <= self.score <= 1.0):
            raise ModelError(f"sentiment score {self.score!r} is outside [-1, 1]")
        if not (math.isfinite(self.confidence) and 0.0 <= self.confidence <= 1.0):
            raise ModelError(f"sentiment confidence {self.confidence!r} is outside [0, 1]")

    def to_dict(self) -> dict[str, float | str]:
        """Return the score as a plain dict (``score``, ``label``, ``confidence``)."""
        return {"score": self.score, "label": self.label, "confidence": self.confidence}


@runtime_checkable
class SentimentModel(Protocol):
    """What the pipeline and the service need from a sentiment model."""

    name: str

    def score(self, texts: Sequence[str]) -> list[SentimentScore]:
        """Score each text; the result has one entry per text, in order."""
        ...


def score_from_probabilities(probabilities: Mapping[str, float]) -> SentimentScore:
    """Build a score from class probabilities keyed by label.

    The score is P(positive) - P(negative), the label is the most probable class (ties go to
    ``neutral``, then ``positive``), and the confidence is that class's probability.

    Args:
        probabilities: probability per label; every label of :data:`SENTIMENT_LABELS` must be
            present and the values must sum to 1 (within 1e-3).

    Returns:
        The :class:`SentimentScore`.

    Raises:
        ModelError: if a label is missing or the probabilities do not sum to 1.
    """
    missing = [label for label in SENTIMENT_LABELS if label not in probabilities]
    if missing:
        raise ModelError(
            f"class probabilities {dict(probabilities)} lack label(s) {', '.join(missing)}"
        )
    total = sum(probabilities[label] for label in SENTIMENT_LABELS)
    if not math.isclose(total, 1.0, abs_tol=1e-3):
        raise ModelError(f"class probabilities {dict(probabilities)} sum to {total:.4f}, not 1")
    label = max((NEUTRAL, POSITIVE, NEGATIVE), key=lambda name: probabilities[name])
    score = min(1.0, max(-1.0, probabilities[POSITIVE] - probabilities[NEGATIVE]))
    confidence = min(1.0, max(0.0, probabilities[label]))
    return SentimentScore(score=float(score), label=label, confidence=float(confidence))
