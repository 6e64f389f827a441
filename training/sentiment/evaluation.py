"""Measure a sentiment model: quality on a labelled CSV, and throughput in posts per second."""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.sentiment.scores import SENTIMENT_LABELS, SentimentModel
from warehouse.errors import DataError, SchemaError

LABELLED_COLUMNS: tuple[str, str] = ("sentence", "label")


@dataclass(frozen=True)
class ClassMetrics:
    """Precision, recall and F1 of one label, and how many gold rows carry it."""

    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class SentimentEvaluation:
    """How a model's labels compare with gold labels.

    Attributes:
        model_name: the ``name`` of the model evaluated.
        n: number of labelled sentences.
        accuracy: share of sentences labelled right.
        macro_f1: unweighted mean of the three per-class F1 scores.
        per_class: :class:`ClassMetrics` per label.
        confusion: ``confusion[gold][predicted]`` counts, every label present on both axes.
    """

    model_name: str
    n: int
    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassMetrics]
    confusion: dict[str, dict[str, int]]

    def to_dict(self) -> dict[str, Any]:
        """Return the evaluation as plain JSON-ready values."""
        return {
            "model_name": self.model_name,
            "n": self.n,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "per_class": {
                label: {
                    "precision": metrics.precision,
                    "recall": metrics.recall,
                    "f1": metrics.f1,
                    "support": metrics.support,
                }
                for label, metrics in self.per_class.items()
            },
            "confusion": {gold: dict(row) for gold, row in self.confusion.items()},
        }


def read_labelled_csv(path: str | Path) -> tuple[list[str], list[str]]:
    """Read a ``sentence,label`` CSV (UTF-8, header row; extra columns are ignored).

    Args:
        path: the file.

    Returns:
        The sentences and their labels, in file order; labels lower-cased.

    Raises:
        DataError: if the file is missing, unreadable, or has no rows or an empty sentence.
        SchemaError: if the ``sentence`` or ``label`` column is missing or a label is not one
            of positive, negative, neutral.
    """
    path = Path(path)
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            columns = [name.strip() for name in reader.fieldnames or []]
            missing = [name for name in LABELLED_COLUMNS if name not in columns]
            if missing:
                raise SchemaError(
                    f"{path}: labelled CSV needs columns {','.join(LABELLED_COLUMNS)}; it has "
                    f"{','.join(columns) or 'no header'} (missing {', '.join(missing)})"
                )
            reader.fieldnames = columns
            sentences: list[str] = []
            labels: list[str] = []
            for row_number, row in enumerate(reader, start=2):
                sentence = (row.get("sentence") or "").strip()
                label = (row.get("label") or "").strip().lower()
                if not sentence:
                    raise DataError(f"{path}: line {row_number} has an empty sentence")
                if label not in SENTIMENT_LABELS:
                    raise SchemaError(
                        f"{path}: line {row_number} has label {label!r}; labels must be one "
                        f"of {', '.join(SENTIMENT_LABELS)}"
                    )
                sentences.append(sentence)
                labels.append(label)
    except FileNotFoundError as error:
        raise DataError(f"labelled CSV {path} does not exist") from error
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path} is not a readable UTF-8 CSV: {error}") from error
    if not sentences:
        raise DataError(f"{path} has a header but no labelled rows")
    return sentences, labels


def evaluate_labels(
    gold: Sequence[str], predicted: Sequence[str], *, model_name: str
) -> SentimentEvaluation:
    """Compare predicted labels with gold labels.

    Args:
        gold: the true labels.
        predicted: the model's labels, same length and order.
        model_name: stored in the result.

    Returns:
        The :class:`SentimentEvaluation`; a class never predicted has precision 0.

    Raises:
        DataError: if the sequences are empty or of different lengths.
    """
    if not gold or len(gold) != len(predicted):
        raise DataError(
            f"cannot evaluate {len(predicted)} predictions against {len(gold)} gold labels"
        )
    confusion = {g: dict.fromkeys(SENTIMENT_LABELS, 0) for g in SENTIMENT_LABELS}
    for truth, guess in zip(gold, predicted, strict=True):
        confusion[truth][guess] += 1
    per_class: dict[str, ClassMetrics] = {}
    for label in SENTIMENT_LABELS:
        hits = confusion[label][label]
        predicted_count = sum(confusion[g][label] for g in SENTIMENT_LABELS)
        support = sum(confusion[label].values())
        precision = hits / predicted_count if predicted_count else 0.0
        recall = hits / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = ClassMetrics(precision, recall, f1, support)
    correct = sum(confusion[label][label] for label in SENTIMENT_LABELS)
    return SentimentEvaluation(
        model_name=model_name,
        n=len(gold),
        accuracy=correct / len(gold),
        macro_f1=sum(metrics.f1 for metrics in per_class.values()) / len(per_class),
        per_class=per_class,
        confusion=confusion,
    )


def evaluate_labelled_csv(path: str | Path, model: SentimentModel) -> SentimentEvaluation:
    """Score every sentence of a ``sentence,label`` CSV and compare with its labels.

    Args:
        path: the labelled CSV (see :func:`read_labelled_csv`).
        model: any :class:`SentimentModel`.

    Returns:
        The :class:`SentimentEvaluation`, named after ``model.name``.

    Raises:
        DataError: see :func:`read_labelled_csv`.
        SchemaError: see :func:`read_labelled_csv`.
    """
    sentences, gold = read_labelled_csv(path)
    predicted = [score.label for score in model.score(sentences)]
    return evaluate_labels(gold, predicted, model_name=model.name)


def sentiment_throughput(
    model: SentimentModel,
    texts: Sequence[str],
    *,
    seconds: float = 2.0,
    batch_size: int = 256,
) -> float:
    """Measure how many texts per second a model scores.

    One batch is scored first as a warm-up and not counted; then batches of ``texts`` (cycled)
    are scored until ``seconds`` have passed.

    Args:
        model: the model to time.
        texts: sample texts; cycled when fewer than needed.
        seconds: how long to measure; default 2.0. At least one batch is always timed.
        batch_size: texts per ``score`` call; default 256.

    Returns:
        Texts (posts) scored per second.

    Raises:
        DataError: if ``texts`` is empty or ``batch_size`` or ``seconds`` is not positive.
    """
    if not texts:
        raise DataError("sentiment_throughput needs at least one text")
    if batch_size <= 0 or seconds <= 0:
        raise DataError(
            f"sentiment_throughput needs batch_size > 0 and seconds > 0, got {batch_size} "
            f"and {seconds}"
        )
    batch = [texts[i % len(texts)] for i in range(batch_size)]
    model.score(batch)
    scored = 0
    start = time.perf_counter()
    while True:
        model.score(batch)
        scored += len(batch)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return scored / elapsed
