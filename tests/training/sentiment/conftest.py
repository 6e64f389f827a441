"""Fixtures of the sentiment tests: a tiny BERT classifier saved to disk, and the labelled data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

PHRASEBANK = "financial_phrasebank_allagree_sample300.csv"
TINY_LABELS = {0: "positive", 1: "negative", 2: "neutral"}
TINY_WORDS = [
    *("the", "profit", "rose", "fell", "loss", "bitcoin", "shares", "company", "sales", "net"),
    *("increased", "decreased", "to", "from", "by", "eur", "mn", "in", "quarter", "a"),
    *(",", ".", "%", "$", *"0123456789"),
]


@pytest.fixture(scope="session")
def phrasebank_csv(shared_data: Callable[[str], Path]) -> Path:
    """The 300-sentence Financial PhraseBank sample (evaluation only: CC BY-NC-SA 3.0)."""
    return shared_data(PHRASEBANK)


def save_tiny_bert(directory: Path, *, id2label: dict[int, str] | None = None) -> Path:
    """Build a 2-layer, 32-wide BertForSequenceClassification and save it with its tokenizer."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    vocab = directory / "vocab.txt"
    vocab.write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TINY_WORDS]) + "\n",
        encoding="utf-8",
    )
    labels = id2label or TINY_LABELS
    config = BertConfig(
        vocab_size=5 + len(TINY_WORDS),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
        id2label=labels,
        label2id={label: i for i, label in labels.items()},
    )
    torch.manual_seed(7)
    BertForSequenceClassification(config).save_pretrained(directory)
    BertTokenizer(vocab=str(vocab)).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_bert_factory() -> Callable[..., Path]:
    """:func:`save_tiny_bert`, for tests that need a folder of their own."""
    return save_tiny_bert


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny three-label BERT classifier folder, built once per session."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert") / "model")
