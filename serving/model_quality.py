"""The champion's quality for the dashboard, from its MLflow run and the lake.

What training logged (``training/train.py``): the pooled validation accuracy of the model
(``val_direction_accuracy``) and of each baseline (``val_<baseline>_direction_accuracy``), and
per horizon on the held-out test split ``test_<h>h_<who>_<metric>`` with ``who`` the model or a
baseline and the metrics ``directional_accuracy``, ``ci_low``, ``ci_high`` (95 % Wilson) and
``n``; the run's tag ``gold_table_version`` is the ``gold/features`` version it was trained on,
whose commit metadata (``marketlake.sources``) names the silver versions gold was built from.

The champion "beats the baselines" when its validation accuracy is above every baseline's, the
rule that promotion applies (the first champion is promoted even when it does not, so serving has
a model: the page then shows a warning).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from serving.board_model import Accuracy, HorizonQuality, ModelQuality
from training.evaluation import BASELINES
from training.registry import SCORE_TAG, LoadedModel
from warehouse.catalog import GOLD_FEATURES
from warehouse.errors import LakeError
from warehouse.lake import Lake, open_table

logger = logging.getLogger("bentoml.marketlake")

SOURCES_KEY = "marketlake.sources"
"""Commit metadata of a gold refresh: ``{source table: version}`` as JSON (warehouse/refresh)."""
HISTORY_LIMIT = 500
"""Gold commits searched for the training version's sources."""


def registry_quality(tracking_uri: str, model: LoadedModel, lake: Lake) -> ModelQuality:
    """The champion's validation and test scores beside the baselines, and its training data.

    Never raises on a registry or lake that cannot answer: the ``note`` says what is missing.

    Args:
        tracking_uri: the MLflow tracking (and registry) URI.
        model: the champion being served.
        lake: the lake, for the gold commit's source versions.
    """
    base = ModelQuality(model_name=model.name, model_version=model.version, run_id=model.run_id)
    if model.run_id is None:
        return base.model_copy(update={"note": "the champion has no MLflow run to read"})
    try:
        run = MlflowClient(tracking_uri, registry_uri=tracking_uri).get_run(model.run_id)
    except MlflowException as exc:
        logger.warning("cannot read run %s of the champion: %s", model.run_id, exc)
        return base.model_copy(update={"note": f"cannot read the champion's run: {exc}"})
    metrics: Mapping[str, float] = run.data.metrics
    validation = (
        {
            "model": metrics[SCORE_TAG],
            **{
                name: metrics[f"val_{name}_direction_accuracy"]
                for name in BASELINES
                if f"val_{name}_direction_accuracy" in metrics
            },
        }
        if SCORE_TAG in metrics
        else {}
    )
    test = test_quality(metrics, model.predictor.horizons)
    beats, warnings = judge(validation, test, version=model.version)
    return base.model_copy(
        update={
            "training_data": training_data(lake, run.data.tags.get("gold_table_version")),
            "validation": validation,
            "test": test,
            "beats_baselines": beats,
            "warnings": warnings,
        }
    )


def test_quality(metrics: Mapping[str, float], horizons: list[int]) -> list[HorizonQuality]:
    """Per horizon, the model and each baseline on the test split (from run metrics)."""

    def accuracy(h: int, who: str) -> Accuracy | None:
        prefix = f"test_{h}h_{who}_"
        if prefix + "directional_accuracy" not in metrics:
            return None
        n = metrics.get(prefix + "n")
        return Accuracy(
            accuracy=metrics[prefix + "directional_accuracy"],
            ci_low=metrics.get(prefix + "ci_low"),
            ci_high=metrics.get(prefix + "ci_high"),
            n=None if n is None else int(n),
        )

    out = []
    for h in horizons:
        model = accuracy(h, "model")
        if model is None:
            continue
        baselines = {name: a for name in BASELINES if (a := accuracy(h, name)) is not None}
        out.append(HorizonQuality(horizon_hours=h, model=model, baselines=baselines))
    return out


def judge(
    validation: Mapping[str, float], test: list[HorizonQuality], *, version: int
) -> tuple[bool | None, list[str]]:
    """Whether the model beats every baseline on validation, and the warnings to show.

    Returns:
        ``(beats, warnings)``; ``beats`` is None when validation scores are missing.
    """
    warnings = []
    beats: bool | None = None
    if "model" in validation and len(validation) > 1:
        rivals = {k: v for k, v in validation.items() if k != "model"}
        best = max(rivals, key=lambda k: rivals[k])
        beats = validation["model"] > rivals[best]
        if not beats:
            warnings.append(
                f"the champion (v{version}) does not beat the baselines on validation: "
                f"{validation['model']:.3f} vs {best} {rivals[best]:.3f}"
            )
    lagging = [
        f"{q.horizon_hours}h"
        for q in test
        if q.model.accuracy is not None
        and any(
            b.accuracy is not None and b.accuracy >= q.model.accuracy for b in q.baselines.values()
        )
    ]
    if lagging:
        warnings.append(
            f"a baseline scores at least as well on the test split at {', '.join(lagging)}"
        )
    return beats, warnings


def training_data(lake: Lake, gold_version: str | None) -> dict[str, str]:
    """``{table: "v<N>"}``: the gold version of the run and the silver versions behind it."""
    if gold_version is None or not gold_version.isdigit():
        return {} if gold_version in (None, "None") else {GOLD_FEATURES: gold_version}
    out = {GOLD_FEATURES: f"v{gold_version}"}
    try:
        table = open_table(lake.location(GOLD_FEATURES))
        history = [] if table is None else table.history(HISTORY_LIMIT)
    except (LakeError, OSError) as exc:
        logger.warning("cannot read the history of %s: %s", GOLD_FEATURES, exc)
        return out
    for commit in history:
        if commit.get("version") == int(gold_version) and SOURCES_KEY in commit:
            sources = json.loads(commit[SOURCES_KEY])
            out.update({t: f"v{v}" for t, v in sorted(sources.items()) if v is not None and v >= 0})
    return out
