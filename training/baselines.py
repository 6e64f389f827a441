"""Naive baselines a price model must beat, fitted on the training rows only.

Every baseline answers ``predict(x, last_return) -> (pred_return, prob_up)`` on the same inputs
the model sees, so the evaluation code treats it exactly like the model:

- ``majority``: the majority class of the training targets. ``prob_up`` is the training share
  of ups (so the call is the majority class), ``pred_return`` the training mean return.
- ``persistence``: the sign of the last observed return (known at ``t``) continues.
  ``pred_return`` is ``last_return`` itself; pass the last return over the same horizon for a
  level forecast, or the last 1 h return. ``prob_up`` is ``0.5 ± m`` where ``m`` is the training
  hit rate of the rule minus 0.5, floored at 0.001 so the call stays the persistence call.
  A zero last return is a "not up" call.
- ``random_walk``: ``pred_return = 0`` and ``prob_up = 0.5`` (a "not up" call by the metrics'
  convention). It is the level benchmark (MAE/RMSE ratios); its direction is meaningless.
- ``linear``: ridge regression for the return and L2 logistic regression for the direction on
  the feature matrix, both with a standardisation fitted on the training rows. Closed-form
  ridge and Newton steps in numpy, equivalent to scikit-learn's ``Ridge(alpha)`` and
  ``LogisticRegression(C=1/l2)`` on standardised features.

A 3-D ``x`` of shape ``(samples, steps, features)`` (LSTM windows) is reduced to its last step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from warehouse.errors import DataError

__all__ = [
    "Baseline",
    "LinearBaseline",
    "MajorityBaseline",
    "PersistenceBaseline",
    "RandomWalkBaseline",
    "fit_baselines",
    "fit_linear",
]

_MIN_MARGIN = 1e-3
_PROB_CLIP = 1e-6


class Baseline(Protocol):
    """What every baseline offers."""

    @property
    def name(self) -> str:
        """The baseline's key, e.g. ``"majority"``."""
        ...

    def predict(self, x: np.ndarray, last_return: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(pred_return, prob_up)`` for each row of ``x``."""
        ...


@dataclass(frozen=True)
class MajorityBaseline:
    """Always the training majority class, with the training up share as probability."""

    up_share: float
    mean_return: float
    name: str = "majority"

    def predict(self, x: np.ndarray, last_return: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Constant ``(mean_return, up_share)`` for each row of ``last_return``."""
        n = len(_as_vector(last_return, "last_return"))
        return np.full(n, self.mean_return), np.full(n, self.up_share)


@dataclass(frozen=True)
class PersistenceBaseline:
    """The sign of the last observed return continues."""

    margin: float
    name: str = "persistence"

    def predict(self, x: np.ndarray, last_return: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(last_return, 0.5 ± margin)``: plus when the last return is > 0."""
        last = _as_vector(last_return, "last_return")
        prob = np.where(last > 0, 0.5 + self.margin, 0.5 - self.margin)
        return last.copy(), prob


@dataclass(frozen=True)
class RandomWalkBaseline:
    """No change: zero return, probability one half."""

    name: str = "random_walk"

    def predict(self, x: np.ndarray, last_return: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Constant ``(0.0, 0.5)`` for each row of ``last_return``."""
        n = len(_as_vector(last_return, "last_return"))
        return np.zeros(n), np.full(n, 0.5)


@dataclass(frozen=True, eq=False)
class LinearBaseline:
    """Ridge return and logistic direction on standardised features."""

    mean: np.ndarray
    scale: np.ndarray
    ridge_coef: np.ndarray
    ridge_intercept: float
    logit_coef: np.ndarray
    logit_intercept: float
    name: str = field(default="linear")

    def predict(self, x: np.ndarray, last_return: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ridge return and logistic probability for each row of ``x``."""
        features = _as_matrix(x, "x")
        if features.shape[1] != len(self.mean):
            raise DataError(
                f"x has {features.shape[1]} features, the baseline was fitted on {len(self.mean)}"
            )
        z = (features - self.mean) / self.scale
        pred = z @ self.ridge_coef + self.ridge_intercept
        prob = _sigmoid(z @ self.logit_coef + self.logit_intercept)
        return pred, np.clip(prob, _PROB_CLIP, 1 - _PROB_CLIP)


def fit_baselines(
    x_train: np.ndarray,
    y_train_return: np.ndarray,
    last_return_train: np.ndarray,
    *,
    ridge_alpha: float = 1.0,
    logistic_l2: float = 1.0,
) -> dict[str, Baseline]:
    """Fit the four baselines on the training rows.

    Args:
        x_train: training features, ``(samples, features)`` or ``(samples, steps, features)``.
        y_train_return: realised forward returns of the training rows (up means ``> 0``).
        last_return_train: the last observed return at each training row (known at ``t``).
        ridge_alpha: L2 penalty of the ridge regression; default 1.0.
        logistic_l2: L2 penalty of the logistic regression (``1/C``); default 1.0.

    Returns:
        ``{"majority", "persistence", "random_walk", "linear"}`` mapped to fitted baselines.

    Raises:
        DataError: when the inputs are empty, not finite, or of different lengths.
    """
    y = _as_vector(y_train_return, "y_train_return")
    last = _as_vector(last_return_train, "last_return_train")
    if len(last) != len(y):
        raise DataError(f"last_return_train has {len(last)} rows, y_train_return {len(y)}")
    up = y > 0
    hit_rate = float(np.mean((last > 0) == up))
    return {
        "majority": MajorityBaseline(up_share=float(up.mean()), mean_return=float(y.mean())),
        "persistence": PersistenceBaseline(margin=max(hit_rate - 0.5, _MIN_MARGIN)),
        "random_walk": RandomWalkBaseline(),
        "linear": fit_linear(x_train, y, ridge_alpha=ridge_alpha, logistic_l2=logistic_l2),
    }


def fit_linear(
    x_train: np.ndarray,
    y_train_return: np.ndarray,
    *,
    ridge_alpha: float = 1.0,
    logistic_l2: float = 1.0,
    max_iter: int = 50,
    tol: float = 1e-10,
) -> LinearBaseline:
    """Fit the ridge and logistic regressions on standardised training features.

    The standardisation (mean and standard deviation; a constant column keeps scale 1) and both
    models see the training rows only; intercepts are not penalised. The logistic regression
    minimises ``sum(log loss) + logistic_l2 / 2 * |w|^2`` by Newton steps with step halving.
    Training targets of a single class give a constant probability (the clipped share).

    Args:
        x_train: training features (2-D, or 3-D reduced to the last step).
        y_train_return: realised forward returns of the training rows.
        ridge_alpha: L2 penalty of the ridge regression; default 1.0.
        logistic_l2: L2 penalty of the logistic regression; default 1.0.
        max_iter: most Newton steps; default 50.
        tol: stop when the largest change of a coefficient is below this; default 1e-10.

    Raises:
        DataError: when the inputs are empty, not finite, or of different lengths.
    """
    x = _as_matrix(x_train, "x_train")
    y = _as_vector(y_train_return, "y_train_return")
    if len(x) != len(y):
        raise DataError(f"x_train has {len(x)} rows, y_train_return {len(y)}")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    d = z.shape[1]
    # Centred features (training mean 0): the unpenalised intercept is the target mean.
    ridge_coef = np.linalg.solve(z.T @ z + ridge_alpha * np.eye(d), z.T @ (y - y.mean()))
    up = (y > 0).astype(float)
    share = float(up.mean())
    if share in (0.0, 1.0):
        clipped = min(max(share, _PROB_CLIP), 1 - _PROB_CLIP)
        logit_coef, logit_intercept = np.zeros(d), float(np.log(clipped / (1 - clipped)))
    else:
        logit_coef, logit_intercept = _fit_logistic(z, up, logistic_l2, max_iter, tol)
    return LinearBaseline(
        mean=mean,
        scale=scale,
        ridge_coef=ridge_coef,
        ridge_intercept=float(y.mean()),
        logit_coef=logit_coef,
        logit_intercept=logit_intercept,
    )


def _fit_logistic(
    z: np.ndarray, up: np.ndarray, l2: float, max_iter: int, tol: float
) -> tuple[np.ndarray, float]:
    """Newton's method on the L2-penalised log loss; the intercept (last weight) is free."""
    design = np.hstack([z, np.ones((len(z), 1))])
    penalty = np.full(design.shape[1], l2)
    penalty[-1] = 0.0
    w = np.zeros(design.shape[1])
    w[-1] = np.log(up.mean() / (1 - up.mean()))

    def loss(weights: np.ndarray) -> float:
        eta = design @ weights
        return float(np.sum(np.logaddexp(0.0, eta) - up * eta) + 0.5 * np.sum(penalty * weights**2))

    current = loss(w)
    for _ in range(max_iter):
        prob = _sigmoid(design @ w)
        grad = design.T @ (prob - up) + penalty * w
        hess = (design * (prob * (1 - prob))[:, None]).T @ design + np.diag(penalty)
        step = np.linalg.solve(hess + 1e-12 * np.eye(len(w)), grad)
        t = 1.0
        while t > 1e-8:
            candidate = w - t * step
            value = loss(candidate)
            if value <= current:
                break
            t /= 2
        else:
            break
        w, current = candidate, value
        if np.max(np.abs(t * step)) < tol:
            break
    return w[:-1], float(w[-1])


def _sigmoid(eta: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -eta))


def _as_vector(values: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise DataError(f"{name}: expected a non-empty 1-D array, got shape {arr.shape}")
    bad = int(np.sum(~np.isfinite(arr)))
    if bad:
        raise DataError(f"{name}: {bad} of {arr.size} values are NaN or infinite")
    return arr


def _as_matrix(values: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 3:
        arr = arr[:, -1, :]
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise DataError(
            f"{name}: expected (samples, features) or (samples, steps, features), "
            f"got {np.shape(values)}"
        )
    bad = int(np.sum(~np.isfinite(arr)))
    if bad:
        raise DataError(f"{name}: {bad} of {arr.size} values are NaN or infinite")
    return arr
