"""Pick a sentiment model by name: ``finbert``, ``lexicon`` or ``auto``."""

from __future__ import annotations

import logging

from training.sentiment.finbert import FinBertOptions, load_finbert, locate_finbert
from training.sentiment.lexicon import LexiconSentimentModel
from training.sentiment.scores import SentimentModel
from warehouse.errors import ConfigError, ModelNotFoundError

SENTIMENT_MODEL_NAMES: tuple[str, ...] = ("auto", "finbert", "lexicon")

logger = logging.getLogger(__name__)


def load_sentiment_model(
    name: str = "auto", *, finbert_options: FinBertOptions | None = None
) -> SentimentModel:
    """Load a sentiment model by name.

    Args:
        name: ``"finbert"`` (``ProsusAI/finbert`` from ``$MARKETLAKE_FINBERT_PATH`` or the
            Hugging Face cache; never downloaded), ``"lexicon"`` (the offline VADER + finance
            lexicon model, always available), or ``"auto"`` (FinBERT when it is present
            locally, else the lexicon model). Default ``"auto"``.
        finbert_options: batching and truncation for FinBERT; ``None`` means
            :class:`FinBertOptions` defaults.

    Returns:
        The model; its ``name`` says which model and version it is.

    Raises:
        ConfigError: if ``name`` is not one of :data:`SENTIMENT_MODEL_NAMES`.
        ModelNotFoundError: if ``name`` is ``"finbert"`` and FinBERT is not on this machine.
    """
    choice = name.strip().lower()
    if choice not in SENTIMENT_MODEL_NAMES:
        raise ConfigError(
            f"unknown sentiment model {name!r}; choose one of {', '.join(SENTIMENT_MODEL_NAMES)}"
        )
    if choice == "lexicon":
        return LexiconSentimentModel()
    if choice == "finbert":
        return load_finbert(options=finbert_options)
    try:
        locate_finbert()
    except ModelNotFoundError as missing:
        logger.info("sentiment model 'auto' uses the lexicon model: %s", missing)
        return LexiconSentimentModel()
    return load_finbert(options=finbert_options)
