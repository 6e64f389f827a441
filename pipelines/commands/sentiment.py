"""`marketlake sentiment score|eval`: score a text, or evaluate a model on a labelled CSV."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from warehouse.settings import Settings

EVAL_BATCH = 64
"""Sentences scored per step of ``eval`` (one progress-bar tick)."""


def cmd_score(args: argparse.Namespace, settings: Settings) -> int:
    from training.sentiment import load_sentiment_model

    model = load_sentiment_model(args.model)
    [result] = model.score([args.text])
    if args.json:
        print(json.dumps({"text": args.text, **result.to_dict(), "model": model.name}, indent=2))
        return 0
    print(
        f"{result.label} score={result.score:+.3f} confidence={result.confidence:.3f} "
        f"({model.name})"
    )
    return 0


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from training.sentiment import SENTIMENT_LABELS, evaluate_labels, load_sentiment_model
    from training.sentiment.evaluation import read_labelled_csv

    sentences, gold = read_labelled_csv(args.file)
    model = load_sentiment_model(args.model)
    predicted: list[str] = []
    with tqdm(
        total=len(sentences),
        unit="sentence",
        desc=f"scoring with {model.name}",
        disable=args.json or not sys.stderr.isatty(),
    ) as progress:
        for start in range(0, len(sentences), EVAL_BATCH):
            batch = sentences[start : start + EVAL_BATCH]
            predicted += [score.label for score in model.score(batch)]
            progress.update(len(batch))
    evaluation = evaluate_labels(gold, predicted, model_name=model.name)
    if args.json:
        body = evaluation.to_dict()
        body["model"] = body.pop("model_name")
        print(json.dumps(body, indent=2))
        return 0
    print(f"model: {model.name}")
    print(f"sentences: {evaluation.n}")
    print(f"accuracy: {evaluation.accuracy:.3f}")
    print(f"macro-F1: {evaluation.macro_f1:.3f}")
    print(f"{'':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
    for label, m in evaluation.per_class.items():
        print(f"{label:<10}{m.precision:>10.3f}{m.recall:>10.3f}{m.f1:>10.3f}{m.support:>10}")
    print("confusion (rows: gold, columns: predicted)")
    print(f"{'':<10}" + "".join(f"{label:>10}" for label in SENTIMENT_LABELS))
    for label in SENTIMENT_LABELS:
        row = evaluation.confusion[label]
        print(f"{label:<10}" + "".join(f"{row[p]:>10}" for p in SENTIMENT_LABELS))
    return 0


def register(sub: Any) -> None:
    """Add ``marketlake sentiment score|eval`` to the parser."""
    from training.sentiment.registry import SENTIMENT_MODEL_NAMES

    help_text = "score text for sentiment, or evaluate a model on a labelled CSV"
    command = sub.add_parser("sentiment", help=help_text, description=help_text)
    actions = command.add_subparsers(dest="action", required=True)

    score = actions.add_parser("score", help="score one text", description="score one text")
    score.add_argument("text", help="the text to score")
    score.set_defaults(handler=cmd_score)

    evaluate = actions.add_parser(
        "eval",
        help="accuracy, macro-F1 and confusion matrix on a sentence,label CSV",
        description="accuracy, macro-F1 and confusion matrix on a sentence,label CSV",
    )
    evaluate.add_argument("--file", required=True, help="CSV with columns sentence,label")
    evaluate.set_defaults(handler=cmd_eval)

    for action in (score, evaluate):
        action.add_argument(
            "--model",
            choices=SENTIMENT_MODEL_NAMES,
            default="auto",
            help="auto (FinBERT if present locally, else lexicon), finbert or lexicon",
        )
        action.add_argument("--json", action="store_true", help="print JSON")
