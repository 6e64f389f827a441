"""The MLflow side of the model lifecycle: tracking set-up, registration, promotion, rollback.

Aliases: ``champion`` is what serving loads; ``previous`` is the champion it replaced, so a
rollback is one alias move. Every registered version carries its validation score as a tag.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from training.predictor import PricePredictor
from warehouse.errors import ModelError, ModelNotFoundError

CHAMPION = "champion"
PREVIOUS = "previous"
EXPERIMENT = "marketlake-price"
SCORE_TAG = "val_direction_accuracy"

_ABSENT = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})
"""MLflow error codes of a registered model or an alias that does not exist (yet)."""


@dataclass(frozen=True)
class RegisteredVersion:
    """One version of a registered model, with its aliases and validation score."""

    name: str
    version: int
    run_id: str | None
    aliases: tuple[str, ...]
    score: float | None
    created_ms: int


def configure_tracking(tracking_uri: str, artifacts: Path | None = None) -> str:
    """Point MLflow at ``tracking_uri`` and return the experiment id (created if missing)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    location = artifacts.resolve().as_uri() if artifacts is not None else None
    return client.create_experiment(EXPERIMENT, artifact_location=location)


def list_versions(client: MlflowClient, name: str) -> list[RegisteredVersion]:
    """Every version of ``name``, newest first."""
    try:
        versions = client.search_model_versions(f"name='{name}'")
        aliases = client.get_registered_model(name).aliases or {}
    except MlflowException:
        return []
    by_version: dict[int, list[str]] = {}
    for alias, number in aliases.items():
        by_version.setdefault(int(number), []).append(alias)
    out = []
    for v in versions:
        score = v.tags.get(SCORE_TAG)
        out.append(
            RegisteredVersion(
                name=name,
                version=int(v.version),
                run_id=v.run_id,
                aliases=tuple(sorted(by_version.get(int(v.version), []))),
                score=float(score) if score is not None else None,
                created_ms=int(v.creation_timestamp or 0),
            )
        )
    return sorted(out, key=lambda item: item.version, reverse=True)


def alias_version(client: MlflowClient, name: str, alias: str = CHAMPION) -> int | None:
    """The version behind ``alias``, or ``None`` if the alias is not set."""
    try:
        return int(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def champion_version(tracking_uri: str, name: str, alias: str = CHAMPION) -> int | None:
    """The version behind ``alias`` of ``name``, read with one registry query (no artifact).

    Cheap enough to call every few seconds: a server follows the champion with it.

    Args:
        tracking_uri: the MLflow tracking (and registry) URI.
        name: the registered model name, e.g. ``"marketlake-price"``.
        alias: the alias to read; default ``"champion"``.

    Returns:
        The version number, or ``None`` when ``name`` is not registered or ``alias`` is not set.

    Raises:
        ModelError: the registry cannot be read (any other MLflow error).
    """
    try:
        # registry_uri given: MlflowClient would otherwise read the process-wide registry URI
        client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
        found = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in _ABSENT:
            return None
        raise ModelError(f"cannot read {name}@{alias} from the MLflow registry: {exc}") from exc
    return int(found.version)


def promote(client: MlflowClient, name: str, version: int) -> int | None:
    """Make ``version`` the champion; the replaced champion keeps the ``previous`` alias.

    Raises:
        ModelNotFoundError: ``name`` has no such version (no alias is touched).
    """
    try:
        client.get_model_version(name, str(version))
    except MlflowException as exc:
        known = ", ".join(str(v.version) for v in list_versions(client, name)) or "none"
        raise ModelNotFoundError(
            f"{name} has no version {version}; registered versions: {known}"
        ) from exc
    current = alias_version(client, name, CHAMPION)
    if current == version:
        return current
    if current is not None:
        client.set_registered_model_alias(name, PREVIOUS, str(current))
    client.set_registered_model_alias(name, CHAMPION, str(version))
    return current


def rollback(client: MlflowClient, name: str) -> int:
    """Move ``champion`` back to the ``previous`` version; returns the new champion."""
    previous = alias_version(client, name, PREVIOUS)
    if previous is None:
        raise ModelNotFoundError(f"{name} has no '{PREVIOUS}' version to roll back to")
    current = alias_version(client, name, CHAMPION)
    client.set_registered_model_alias(name, CHAMPION, str(previous))
    if current is not None:
        client.set_registered_model_alias(name, PREVIOUS, str(current))
    return previous


@dataclass(frozen=True)
class LoadedModel:
    """A registered price model loaded for inference, with the version it came from."""

    predictor: PricePredictor
    name: str
    version: int
    run_id: str | None


def load_registered(tracking_uri: str, name: str, selector: str = CHAMPION) -> LoadedModel:
    """Load a registered price model by alias (``champion``) or version number (``"3"``).

    Raises:
        ModelNotFoundError: no version matches ``selector``.
    """
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    try:
        if selector.isdigit():
            version = client.get_model_version(name, selector)
        else:
            version = client.get_model_version_by_alias(name, selector)
        loaded = mlflow.pyfunc.load_model(f"models:/{name}/{version.version}")
    except MlflowException as exc:
        raise ModelNotFoundError(
            f"no model {name}@{selector} in {tracking_uri}: train one with `marketlake train`"
        ) from exc
    predictor = loaded.unwrap_python_model()
    if not isinstance(predictor, PricePredictor):
        raise ModelNotFoundError(
            f"{name} version {version.version} is not a marketlake price model"
        )
    return LoadedModel(predictor, name, int(version.version), version.run_id)
