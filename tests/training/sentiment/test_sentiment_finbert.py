"""The FinBERT loader, exercised with a tiny BERT classifier saved to disk."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from training.sentiment import (
    FINBERT_PATH_ENV,
    FinBertOptions,
    LexiconSentimentModel,
    load_finbert,
    load_sentiment_model,
    locate_finbert,
    random_bert_base_model,
)
from training.sentiment.finbert import generated_vocabulary, hub_cache_dir
from warehouse.errors import ConfigError, ModelError, ModelNotFoundError

TEXTS = [
    "The net profit rose by 5 % to EUR 3 mn .",
    "Bitcoin fell",
    "",
    "shares of the company decreased in the quarter from EUR 9 mn to EUR 4 mn",
    "loss",
]
TINY_LABELS = {0: "positive", 1: "negative", 2: "neutral"}  # as the conftest saves them
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def no_finbert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No FinBERT anywhere: the env var unset and an empty Hugging Face cache."""
    monkeypatch.delenv(FINBERT_PATH_ENV, raising=False)
    cache = tmp_path / "empty-hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def cached_finbert(tiny_bert_dir: Path, no_finbert: Path) -> Path:
    """The tiny model laid out as the Hub cache lays out a ProsusAI/finbert snapshot."""
    repo = no_finbert / "models--ProsusAI--finbert"
    shutil.copytree(tiny_bert_dir, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT, encoding="utf-8")
    return repo


def test_tiny_bert_round_trip_scores_follow_the_contract(tiny_bert_dir: Path) -> None:
    model = load_finbert(tiny_bert_dir)
    scores = model.score(TEXTS)
    probabilities = model.probabilities(TEXTS)
    assert len(scores) == len(TEXTS)
    assert model.name.startswith(f"finbert:{tiny_bert_dir.resolve()}@")
    for score, row in zip(scores, probabilities.tolist(), strict=True):
        by_label = dict(zip(TINY_LABELS.values(), row, strict=True))
        assert -1.0 <= score.score <= 1.0
        assert score.score == pytest.approx(by_label["positive"] - by_label["negative"], abs=1e-5)
        assert score.label == max(by_label, key=lambda label: by_label[label])
        assert score.confidence == pytest.approx(max(row), abs=1e-6)


def test_labels_are_read_from_the_config_id2label(
    tmp_path: Path, tiny_bert_factory: Callable[..., Path]
) -> None:
    # neutral first: column 0 must not be taken for "positive"
    neutral_first = {0: "neutral", 1: "positive", 2: "negative"}
    folder = tiny_bert_factory(tmp_path / "m", id2label=neutral_first)
    model = load_finbert(folder)
    rows = model.probabilities(TEXTS).tolist()
    for score, row in zip(model.score(TEXTS), rows, strict=True):
        assert score.score == pytest.approx(row[1] - row[2], abs=1e-5)


def test_batches_and_order_do_not_change_scores(tiny_bert_dir: Path) -> None:
    one_batch = load_finbert(tiny_bert_dir, options=FinBertOptions(batch_size=32)).score(TEXTS)
    small = load_finbert(tiny_bert_dir, options=FinBertOptions(batch_size=2)).score(TEXTS)
    for big, little in zip(one_batch, small, strict=True):
        assert little.score == pytest.approx(big.score, abs=1e-5)
        assert little.label == big.label


def test_long_texts_are_truncated_to_max_length(tiny_bert_dir: Path) -> None:
    # 400 tokens would overflow the tiny model's 64 position embeddings without truncation
    model = load_finbert(tiny_bert_dir, options=FinBertOptions(max_length=16))
    (score,) = model.score(["the profit rose " * 130])
    assert -1.0 <= score.score <= 1.0


def test_loading_sets_offline_mode_and_threads(
    tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    load_finbert(tiny_bert_dir)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert torch.get_num_threads() == min(4, os.cpu_count() or 1)


def test_missing_directory_fails_fast_and_says_where(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    start = time.perf_counter()
    with pytest.raises(ModelNotFoundError) as raised:
        load_finbert(missing)
    assert time.perf_counter() - start < 0.5
    assert str(missing) in str(raised.value)
    assert "hf download ProsusAI/finbert" in str(raised.value)


def test_folder_without_weights_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ModelNotFoundError, match=r"config\.json"):
        locate_finbert(tmp_path)


def test_env_var_names_the_model_folder(
    tiny_bert_dir: Path, no_finbert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FINBERT_PATH_ENV, str(tiny_bert_dir))
    model = load_sentiment_model("finbert")
    assert model.name.startswith(f"finbert:{tiny_bert_dir.resolve()}@")
    assert load_sentiment_model("auto").name == model.name


def test_env_var_to_a_missing_folder_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FINBERT_PATH_ENV, str(tmp_path / "gone"))
    with pytest.raises(ModelNotFoundError, match=rf"\${FINBERT_PATH_ENV}"):
        locate_finbert()


def test_hub_cache_snapshot_is_found_with_its_commit(cached_finbert: Path) -> None:
    model = load_sentiment_model("finbert")
    assert model.name == f"finbert:ProsusAI/finbert@{COMMIT}"
    assert load_sentiment_model("auto").name == model.name
    assert len(model.score(TEXTS)) == len(TEXTS)


def test_hub_cache_follows_hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert hub_cache_dir() == tmp_path / "hf" / "hub"


def test_without_finbert_auto_falls_back_to_the_lexicon(no_finbert: Path) -> None:
    assert isinstance(load_sentiment_model("auto"), LexiconSentimentModel)
    with pytest.raises(ModelNotFoundError) as raised:
        load_sentiment_model("finbert")
    assert str(no_finbert) in str(raised.value)
    assert FINBERT_PATH_ENV in str(raised.value)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("lexicon", "lexicon-vader-finance-v1"),  # the offline model, by name
        (" Lexicon ", "lexicon-vader-finance-v1"),  # names are trimmed and case-insensitive
    ],
)
def test_registry_names(name: str, expected: str) -> None:
    assert load_sentiment_model(name).name == expected


def test_unknown_model_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="finbert"):
        load_sentiment_model("gpt")


def test_a_classifier_without_the_three_labels_is_refused(
    tmp_path: Path, tiny_bert_factory: Callable[..., Path]
) -> None:
    folder = tiny_bert_factory(tmp_path / "m", id2label={0: "bullish", 1: "bearish", 2: "neutral"})
    with pytest.raises(ModelError, match="id2label"):
        load_finbert(folder)


def test_random_bert_pads_every_text_to_max_length() -> None:
    # the benchmark model, shrunk: the BERT-base default is too slow for a test
    model = random_bert_base_model(hidden_size=32, num_layers=1, num_heads=2)
    encoded = model._tokenizer(TEXTS, padding="max_length", truncation=True, max_length=64)
    assert {len(ids) for ids in encoded["input_ids"]} == {64}
    assert model.options.max_length == 64 and model.options.pad_to_max_length
    assert model.name == "random-bert:1x32@seed0"
    assert all(-1.0 <= score.score <= 1.0 for score in model.score(TEXTS))


def test_generated_vocabulary_has_bert_base_size_and_specials() -> None:
    vocabulary = generated_vocabulary()
    assert len(vocabulary) == 30522
    assert [vocabulary[token] for token in ("[PAD]", "[UNK]", "[CLS]", "[SEP]")] == [0, 1, 2, 3]
    assert "##a" in vocabulary


@pytest.mark.parametrize(
    "options",
    [
        {"batch_size": 0},  # no batch
        {"max_length": 1},  # no room for [CLS] and [SEP]
        {"num_threads": 0},  # no thread
    ],
)
def test_bad_options_are_config_errors(options: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        FinBertOptions(**options)
