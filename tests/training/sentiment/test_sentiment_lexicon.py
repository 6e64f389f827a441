"""The offline VADER + finance lexicon model: behaviour, metric moves, and measured quality."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.sentiment import (
    LexiconOptions,
    LexiconSentimentModel,
    evaluate_labelled_csv,
    load_sentiment_model,
)
from training.sentiment.movements import find_movements
from warehouse.errors import ConfigError

DEV_SET = Path(__file__).resolve().parents[3] / "training" / "sentiment" / "finance_dev_set.csv"


@pytest.fixture(scope="module")
def model() -> LexiconSentimentModel:
    return LexiconSentimentModel()


@pytest.mark.parametrize(
    "text, label",
    [
        # company results: the metric that moved, and which way
        ("Net sales increased by 14 % to EUR 65.4 million .", "positive"),
        ("Operating profit fell to EUR 4.9 mn from EUR 5.6 mn .", "negative"),
        ("The quarterly net loss narrowed to $2 million .", "positive"),
        ("Its pre-tax loss widened to EUR 8 million .", "negative"),
        ("Costs decreased by 6 percent .", "positive"),
        ("The bank will cut 200 jobs in Finland .", "negative"),
        ("The company swung to a net loss of EUR 3 mn .", "negative"),
        ("Revenue was EUR 12.0 mn compared with EUR 9.5 mn a year earlier .", "positive"),
        ("Operating profit totalled EUR 9.4 mn , down from EUR 11.7 mn .", "negative"),
        ("Revenue did not increase in the quarter .", "negative"),
        # market events
        ("The shares jumped 12 % after results beat expectations .", "positive"),
        ("The retailer issued a profit warning .", "negative"),
        ("Analysts downgraded the stock to sell .", "negative"),
        ("The firm filed for bankruptcy protection .", "negative"),
        # crypto slang
        ("Bitcoin just printed a new all-time high 🚀", "positive"),
        ("ETH looking super bullish here", "positive"),
        ("This coin is a rug pull, devs dumped on everyone", "negative"),
        ("The bridge got hacked and $80M was drained", "negative"),
        ("Very bearish on SOL, expecting another leg down", "negative"),
        # neutral business and crypto prose, with words plain VADER calls positive
        ("The company is a leading provider of safety solutions .", "neutral"),
        ("The shares are listed on the Helsinki stock exchange .", "neutral"),
        ("The credit facility carries an interest rate of 4 % .", "neutral"),
        ("The annual general meeting will be held in April .", "neutral"),
        ("The company declined to comment on the report .", "neutral"),
        ("Bitcoin is a decentralised digital currency .", "neutral"),
        ("", "neutral"),
    ],
)
def test_lexicon_labels(model: LexiconSentimentModel, text: str, label: str) -> None:
    (score,) = model.score([text])
    assert score.label == label, model.rewrite(text)


@pytest.mark.parametrize(
    "sentence, valence_sign, metric",
    [
        ("operating profit rose", 1, "profit"),  # good metric up
        ("sales decreased", -1, "sales"),  # good metric down
        ("the loss narrowed", 1, "loss"),  # bad metric down
        ("costs increased sharply", -1, "costs"),  # bad metric up
        ("an increase in net sales", 1, "sales"),  # metric after the direction word
        ("raw material prices rose", -1, "prices"),  # prices the company pays are costs
        ("the stock was down 3 %", -1, "stock"),  # a gated 'down'
        ("it slipped to a net loss", -1, "loss"),  # the state reached decides
        ("returned to profit", 1, "profit"),  # the state reached decides
        ("it went up 4 %", 1, None),  # unpaired move of a figure: a price move
    ],
)
def test_metric_moves(sentence: str, valence_sign: int, metric: str | None) -> None:
    keys = sentence.split()
    (move,) = find_movements(keys)
    assert (move.valence > 0) == (valence_sign > 0)
    assert (keys[move.metric_index] if move.metric_index is not None else None) == metric


@pytest.mark.parametrize(
    "sentence",
    [
        "the company was set up in 1998",  # 'up' as a particle
        "volumes of up to 5 tonnes",  # 'up to'
        "the firm declined to comment",  # an idiom, read as a phrase
    ],
)
def test_particles_and_idioms_are_not_moves(model: LexiconSentimentModel, sentence: str) -> None:
    assert "mlxpos" not in model.rewrite(sentence)
    assert "mlxneg" not in model.rewrite(sentence)


def test_scores_keep_the_contract(model: LexiconSentimentModel) -> None:
    texts = ["profit rose!!!", "bankruptcy, fraud and a lawsuit", "AGM in May", ""]
    scores = model.score(texts)
    assert [score.label for score in scores] == ["positive", "negative", "neutral", "neutral"]
    assert all(-1.0 <= s.score <= 1.0 and 0.5 <= s.confidence <= 1.0 for s in scores)
    assert scores[-1].score == 0.0 and scores[-1].confidence == 1.0


def test_name_identifies_the_lexicon_version_and_options() -> None:
    assert LexiconSentimentModel().name == "lexicon-vader-finance-v1"
    assert load_sentiment_model("lexicon").name == "lexicon-vader-finance-v1"
    tuned = LexiconSentimentModel(options=LexiconOptions(positive_threshold=0.2))
    assert tuned.name.startswith("lexicon-vader-finance-v1+")


@pytest.mark.parametrize(
    "options",
    [
        {"positive_threshold": 0.0},  # every text would be positive
        {"negative_threshold": 1.0},  # no text could be negative
        {"general_weight": -1.0},  # would flip VADER's words
    ],
)
def test_bad_options_are_config_errors(options: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        LexiconOptions(**options)


def test_tuning_set_quality(model: LexiconSentimentModel) -> None:
    # the hand-written set the defaults were chosen on (0.99 macro-F1 when written)
    evaluation = evaluate_labelled_csv(DEV_SET, model)
    assert evaluation.n >= 100
    assert evaluation.macro_f1 >= 0.9


def test_phrasebank_quality(model: LexiconSentimentModel, phrasebank_csv: Path) -> None:
    # never tuned on: measured 0.857 macro-F1 and 0.887 accuracy (plain VADER: 0.497 and 0.58)
    evaluation = evaluate_labelled_csv(phrasebank_csv, model)
    assert evaluation.n == 300
    assert evaluation.macro_f1 >= 0.80
    assert evaluation.accuracy >= 0.85
    assert evaluation.model_name == "lexicon-vader-finance-v1"
