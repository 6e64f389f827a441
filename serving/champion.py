"""Follow the registry's ``champion``: serve a newly promoted (or rolled back) model without a
restart.

Plain Python (no BentoML). :class:`ChampionFollower` reads the version behind the ``champion``
alias every ``MARKETLAKE_MODEL_REFRESH_S`` seconds (one cheap registry query, see
:func:`training.registry.champion_version`) and, when the alias moved, loads that version in its
own thread while the old model keeps answering; then it swaps the new model in with a single
reference assignment, so a reader sees either the old model or the new one, never a mix. A load
that fails is logged and retried at the next check; the old model stays. Before the first
champion exists the follower holds no model: :meth:`ChampionFollower.require` raises
:class:`NoChampionError`, which the service answers with a 503 saying how to get one.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from training.registry import CHAMPION, LoadedModel, champion_version, load_registered
from warehouse.errors import ConfigError, ModelNotFoundError

logger = logging.getLogger("bentoml.marketlake")

MODEL_REFRESH_ENV = "MARKETLAKE_MODEL_REFRESH_S"
DEFAULT_MODEL_REFRESH_S = 5.0
"""Seconds between two reads of the ``champion`` alias when ``MARKETLAKE_MODEL_REFRESH_S`` is
unset."""

HOW_TO_GET_A_CHAMPION = (
    "train one with `marketlake train` (or materialize the Dagster asset ml/price_model)"
)

Loader = Callable[[str, str, str], LoadedModel]
"""``loader(tracking_uri, name, version)`` loads one registered version (a number as text)."""


def model_refresh_s(environ: Mapping[str, str] | None = None) -> float:
    """Seconds between two champion checks: ``MARKETLAKE_MODEL_REFRESH_S``, default 5.

    Args:
        environ: the variables to read; default None: the process environment.

    Raises:
        ConfigError: the value is not a positive, finite number of seconds.
    """
    env = os.environ if environ is None else environ
    raw = (env.get(MODEL_REFRESH_ENV) or "").strip()
    if not raw:
        return DEFAULT_MODEL_REFRESH_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(
            f"{MODEL_REFRESH_ENV}={raw!r}: must be a positive number of seconds between two "
            f"checks of the champion model, e.g. {MODEL_REFRESH_ENV}=10 (the default)"
        )
    return value


class NoChampionError(ModelNotFoundError):
    """No champion model is loaded yet, so nothing can be predicted."""


class ModelSource(Protocol):
    """Where a prediction service gets the model to answer with."""

    def require(self) -> LoadedModel:
        """The model to answer with; raise :class:`NoChampionError` when there is none."""
        ...


@dataclass(frozen=True)
class FixedModel:
    """A :class:`ModelSource` that always answers with one model (tests, notebooks)."""

    model: LoadedModel

    def require(self) -> LoadedModel:
        return self.model


class ChampionFollower:
    """Keeps the registry's champion loaded, following every promotion and rollback.

    Call :meth:`start` to make the first check at once and then check every ``refresh_s``
    seconds in a daemon thread; or call :meth:`check` yourself. Readers take :attr:`current`
    without a lock.

    Args:
        tracking_uri: the MLflow tracking (and registry) URI.
        name: the registered model, e.g. ``"marketlake-price"``.
        refresh_s: seconds between two checks; default 5 (see :func:`model_refresh_s`).
        alias: the alias to follow; default ``"champion"``.
        loader: loads one version; default :func:`training.registry.load_registered`.
    """

    def __init__(
        self,
        tracking_uri: str,
        name: str,
        *,
        refresh_s: float = DEFAULT_MODEL_REFRESH_S,
        alias: str = CHAMPION,
        loader: Loader = load_registered,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.name = name
        self.refresh_s = refresh_s
        self.alias = alias
        self._loader = loader
        self._current: LoadedModel | None = None
        self._failed: int | None = None  # the version whose last load failed
        self._loading: int | None = None  # the version being loaded now
        self._waiting_logged = False
        self._checking = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def current(self) -> LoadedModel | None:
        """The model being served; None until a champion has been loaded."""
        return self._current

    def require(self) -> LoadedModel:
        """The model being served.

        Raises:
            NoChampionError: no champion has been loaded yet; the message says why and how to
                get one.
        """
        model = self._current
        if model is not None:
            return model
        loading = self._loading
        if loading is not None:
            raise NoChampionError(
                f"the champion model {self.name} version {loading} is loading; retry in a few "
                "seconds"
            )
        failed = self._failed
        if failed is not None:
            raise NoChampionError(
                f"the champion model {self.name} version {failed} could not be loaded (see the "
                f"service log); retrying every {self.refresh_s:g} s"
            )
        raise NoChampionError(
            f"no champion model is registered yet for {self.name}: {HOW_TO_GET_A_CHAMPION}; "
            f"the service picks it up within {self.refresh_s:g} s, no restart needed"
        )

    def check(self) -> LoadedModel | None:
        """Read the alias once and load its version when it moved; return the served model.

        Never raises: a registry that cannot be read or a version that cannot be loaded is
        logged (and retried at the next check) and the model served so far stays.
        """
        with self._checking:
            try:
                self._follow()
            except Exception:
                logger.exception(
                    "could not check %s@%s; still serving %s; next check in %g s",
                    self.name,
                    self.alias,
                    _describe(self._current),
                    self.refresh_s,
                )
            return self._current

    def start(self) -> ChampionFollower:
        """Check once now, then every ``refresh_s`` seconds in a daemon thread; returns self."""
        if self._thread is not None:
            return self
        self.check()
        self._stopped.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"follow-{self.name}@{self.alias}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the checks; waits up to ``timeout_s`` (default 5) for a load in progress."""
        self._stopped.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stopped.wait(self.refresh_s):
            self.check()

    def _follow(self) -> None:
        target = champion_version(self.tracking_uri, self.name, self.alias)
        current = self._current
        if target is None:
            self._failed = None
            self._log_missing_alias(current)
            return
        self._waiting_logged = False
        if current is not None and current.version == target:
            self._failed = None
            return
        logger.info(
            "%s@%s is version %d: loading it (serving %s meanwhile)",
            self.name,
            self.alias,
            target,
            _describe(current),
        )
        started = time.monotonic()
        self._loading = target
        try:
            loaded = self._loader(self.tracking_uri, self.name, str(target))
        except Exception:
            self._loading = None
            self._failed = target
            logger.exception(
                "could not load %s version %d; still serving %s; retrying in %g s",
                self.name,
                target,
                _describe(current),
                self.refresh_s,
            )
            return
        self._current = loaded  # one reference assignment: readers see the old or the new model
        self._loading = self._failed = None
        logger.info(
            "now serving %s version %d (loaded in %.1f s; was %s)",
            loaded.name,
            loaded.version,
            time.monotonic() - started,
            _describe(current),
        )

    def _log_missing_alias(self, current: LoadedModel | None) -> None:
        if self._waiting_logged:
            return
        self._waiting_logged = True
        if current is None:
            logger.warning(
                "waiting for a champion model: %s has no '%s' alias in the MLflow registry yet; "
                "%s; checking every %g s",
                self.name,
                self.alias,
                HOW_TO_GET_A_CHAMPION,
                self.refresh_s,
            )
        else:
            logger.warning(
                "%s has no '%s' alias any more; still serving version %d",
                self.name,
                self.alias,
                current.version,
            )


def _describe(model: LoadedModel | None) -> str:
    return "no model" if model is None else f"version {model.version}"
