"""The offline sentiment model: VADER extended for finance and crypto.

Works on a fresh machine with no model weights: VADER's lexicon ships in the ``vaderSentiment``
package. On top of it, each text is rewritten before VADER scores it:

1. emojis become their names and hyphens between letters become spaces ("all-time high");
2. finance and crypto phrases ("profit warning", "rug pull", "beat expectations") become one
   token carrying the phrase's valence (:mod:`training.sentiment.finance_lexicon`);
3. metric moves ("operating profit rose", "the net loss narrowed", "EUR 9.4 mn compared with
   EUR 11.7 mn") become one token carrying the move's signed valence
   (:mod:`training.sentiment.movements`), and the metric word itself goes silent.

VADER then applies its negation, booster and "but" rules to the rewritten tokens. Its
general-purpose words are damped (``general_weight``) because in company news "leading",
"support" or "free" describe rather than judge; finance words keep their full valence. The score is
VADER's compound in [-1, 1]; the label comes from two thresholds.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from training.sentiment.finance_lexicon import (
    FINANCE_PHRASES,
    FINANCE_WORDS,
    LEXICON_VERSION,
    NEUTRAL_IN_FINANCE,
)
from training.sentiment.movements import MovementOptions, find_movements
from training.sentiment.scores import NEGATIVE, NEUTRAL, POSITIVE, SentimentScore
from warehouse.errors import ConfigError

LEXICON_MODEL_BASENAME = f"lexicon-vader-finance-{LEXICON_VERSION}"
_PUNCTUATION = string.punctuation + "«»…"
# typographic quotes read as ASCII ones, so that VADER strips them from words too
_ASCII_QUOTES = str.maketrans({"‘": "'", "’": "'", "‚": "'", "“": '"', "”": '"', "„": '"'})
_HYPHEN = re.compile(r"(?<=[A-Za-z])[-‐–](?=[A-Za-z])")
_SILENT = "mlxsilent"  # a metric whose move was scored already
_STEPS = 50  # placeholder valences are quantised to 0.1 up to +-5.0


def _placeholder(valence: float) -> str:
    step = max(-_STEPS, min(_STEPS, round(valence * 10)))
    if step == 0:
        return _SILENT
    return f"mlxpos{step}" if step > 0 else f"mlxneg{-step}"


@dataclass(frozen=True)
class LexiconOptions:
    """Settings of :class:`LexiconSentimentModel`.

    Attributes:
        general_weight: factor on VADER's own word valences. Default 0.5.
        positive_threshold: compound at or above which the label is positive. Default 0.3.
        negative_threshold: compound at or below minus this value is negative. Default 0.3.
        movements: weights of metric moves; default :class:`MovementOptions`.
    """

    general_weight: float = 0.5
    positive_threshold: float = 0.3
    negative_threshold: float = 0.3
    movements: MovementOptions = field(default_factory=MovementOptions)

    def __post_init__(self) -> None:
        for name in ("positive_threshold", "negative_threshold"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ConfigError(f"LexiconOptions.{name} must be in (0, 1), got {value!r}")
        if self.general_weight < 0.0:
            raise ConfigError(
                f"LexiconOptions.general_weight must be >= 0, got {self.general_weight!r}"
            )


class LexiconSentimentModel:
    """VADER with a finance and crypto lexicon, phrase rules and metric-move rules.

    Args:
        options: thresholds and weights; ``None`` means the :class:`LexiconOptions` defaults,
            which were chosen on the package's hand-written ``finance_dev_set.csv``.
    """

    def __init__(self, *, options: LexiconOptions | None = None) -> None:
        self.options = options or LexiconOptions()
        self.name = LEXICON_MODEL_BASENAME
        if self.options != LexiconOptions():
            digest = hashlib.sha256(repr(asdict(self.options)).encode()).hexdigest()[:8]
            self.name = f"{LEXICON_MODEL_BASENAME}+{digest}"
        self._analyzer = SentimentIntensityAnalyzer()
        self._emojis: dict[str, str] = self._analyzer.emojis
        lexicon = {
            word: valence * self.options.general_weight
            for word, valence in self._analyzer.lexicon.items()
            if word not in NEUTRAL_IN_FINANCE
        }
        lexicon.update(FINANCE_WORDS)
        for step in range(1, _STEPS + 1):
            lexicon[f"mlxpos{step}"] = step / 10
            lexicon[f"mlxneg{step}"] = -step / 10
        self._analyzer.lexicon = lexicon
        self._phrases = _index_phrases(FINANCE_PHRASES)

    def score(self, texts: Sequence[str]) -> list[SentimentScore]:
        """Score each text.

        Args:
            texts: the texts; an empty or blank text scores neutral with confidence 1.

        Returns:
            One :class:`SentimentScore` per text, in order.
        """
        return [self._label(self.compound(text)) for text in texts]

    def compound(self, text: str) -> float:
        """Return the VADER compound in [-1, 1] of ``text`` after the finance rewrite."""
        rewritten = self.rewrite(text)
        if not rewritten.strip():
            return 0.0
        return float(self._analyzer.polarity_scores(rewritten)["compound"])

    def rewrite(self, text: str) -> str:
        """Return the text as VADER sees it: phrases and metric moves replaced by placeholders.

        Placeholders read ``mlxpos25`` (valence +2.5), ``mlxneg18`` (-1.8) or ``mlxsilent``.
        """
        text = "".join(f" {self._emojis[ch]} " if ch in self._emojis else ch for ch in text)
        text = text.translate(_ASCII_QUOTES)
        raw = _HYPHEN.sub(" ", text).split()
        keys = [token.strip(_PUNCTUATION).lower() for token in raw]
        raw, keys = self._replace_phrases(raw, keys)
        for move in find_movements(keys, options=self.options.movements):
            raw[move.direction_index] = _placeholder(move.valence) + _trailing(
                raw[move.direction_index]
            )
            if move.metric_index is not None:
                raw[move.metric_index] = _SILENT + _trailing(raw[move.metric_index])
        return " ".join(raw)

    def _replace_phrases(self, raw: list[str], keys: list[str]) -> tuple[list[str], list[str]]:
        out_raw: list[str] = []
        out_keys: list[str] = []
        i = 0
        while i < len(keys):
            for words, valence in self._phrases.get(keys[i], ()):
                if tuple(keys[i : i + len(words)]) == words:
                    token = _placeholder(valence)
                    out_raw.append(token + _trailing(raw[i + len(words) - 1]))
                    out_keys.append(token)
                    i += len(words)
                    break
            else:
                out_raw.append(raw[i])
                out_keys.append(keys[i])
                i += 1
        return out_raw, out_keys

    def _label(self, compound: float) -> SentimentScore:
        """Turn a compound into a score, a label and a confidence.

        A polar label's confidence runs from 0.5 at its threshold to 1 at |compound| = 1; a
        neutral label's from 1 at 0 down to 0.5 at the nearer threshold.
        """
        score = max(-1.0, min(1.0, compound))
        upper, lower = self.options.positive_threshold, self.options.negative_threshold
        if score >= upper:
            label, confidence = POSITIVE, 0.5 + 0.5 * (score - upper) / (1.0 - upper)
        elif score <= -lower:
            label, confidence = NEGATIVE, 0.5 + 0.5 * (-score - lower) / (1.0 - lower)
        else:
            edge = upper if score >= 0 else lower
            label, confidence = NEUTRAL, 1.0 - 0.5 * abs(score) / edge
        return SentimentScore(score=score, label=label, confidence=min(1.0, max(0.0, confidence)))


def _trailing(token: str) -> str:
    """The ``!`` and ``?`` at the end of a token, which VADER reads as emphasis."""
    stripped = token.rstrip("!?")
    return token[len(stripped) :]


def _index_phrases(phrases: dict[str, float]) -> dict[str, list[tuple[tuple[str, ...], float]]]:
    """Index phrases by first word, longest first, in the tokenisation :meth:`rewrite` uses."""
    index: dict[str, list[tuple[tuple[str, ...], float]]] = {}
    for phrase, valence in phrases.items():
        words = tuple(_HYPHEN.sub(" ", phrase).lower().split())
        index.setdefault(words[0], []).append((words, valence))
    for entries in index.values():
        entries.sort(key=lambda entry: -len(entry[0]))
    return index
