"""Sentiment models: FinBERT loaded offline, and a VADER + finance lexicon model as fallback.

Every model follows :class:`SentimentModel`: ``name`` (model and version, stored beside each
score) and ``score(texts) -> list[SentimentScore]`` with score P(positive) - P(negative) in
[-1, 1], a label and a confidence. Pick one with :func:`load_sentiment_model`. torch and
transformers are imported only when a transformer model is loaded.
"""

from __future__ import annotations

from training.sentiment.evaluation import (
    ClassMetrics,
    SentimentEvaluation,
    evaluate_labelled_csv,
    evaluate_labels,
    read_labelled_csv,
    sentiment_throughput,
)
from training.sentiment.finbert import (
    FINBERT_PATH_ENV,
    FINBERT_REPO_ID,
    FinBertLocation,
    FinBertOptions,
    TransformerSentimentModel,
    load_finbert,
    locate_finbert,
    random_bert_base_model,
)
from training.sentiment.lexicon import LexiconOptions, LexiconSentimentModel
from training.sentiment.registry import SENTIMENT_MODEL_NAMES, load_sentiment_model
from training.sentiment.scores import (
    NEGATIVE,
    NEUTRAL,
    POSITIVE,
    SENTIMENT_LABELS,
    SentimentModel,
    SentimentScore,
    score_from_probabilities,
)

__all__ = [
    "FINBERT_PATH_ENV",
    "FINBERT_REPO_ID",
    "NEGATIVE",
    "NEUTRAL",
    "POSITIVE",
    "SENTIMENT_LABELS",
    "SENTIMENT_MODEL_NAMES",
    "ClassMetrics",
    "FinBertLocation",
    "FinBertOptions",
    "LexiconOptions",
    "LexiconSentimentModel",
    "SentimentEvaluation",
    "SentimentModel",
    "SentimentScore",
    "TransformerSentimentModel",
    "evaluate_labelled_csv",
    "evaluate_labels",
    "load_finbert",
    "load_sentiment_model",
    "locate_finbert",
    "random_bert_base_model",
    "read_labelled_csv",
    "score_from_probabilities",
    "sentiment_throughput",
]
