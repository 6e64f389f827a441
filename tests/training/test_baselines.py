"""Naive baselines: hand-computed fits, sklearn references, and honest numbers on real BTC hours."""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from training.baselines import (
    LinearBaseline,
    MajorityBaseline,
    PersistenceBaseline,
    RandomWalkBaseline,
    fit_baselines,
    fit_linear,
)
from training.metrics import evaluate_horizon
from warehouse.errors import DataError


def _tiny_training_set() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.array([0.02, -0.01, 0.03, 0.01, -0.02, 0.0, 0.01, 0.02, -0.03, 0.01])
    last = np.array([0.01, 0.02, -0.01, 0.03, 0.01, -0.02, 0.0, 0.01, 0.02, -0.03])
    x = np.column_stack([last, np.arange(10.0)])
    return x, y, last


def test_majority_is_the_training_up_share_and_mean() -> None:
    x, y, last = _tiny_training_set()
    majority = fit_baselines(x, y, last)["majority"]
    assert majority == MajorityBaseline(up_share=0.6, mean_return=pytest.approx(0.004))
    pred, prob = majority.predict(np.zeros((3, 2)), np.array([1.0, -1.0, 0.0]))
    assert list(prob) == [0.6] * 3  # > 0.5: the majority call is "up"
    assert list(pred) == pytest.approx([0.004] * 3)


def test_persistence_follows_the_sign_of_the_last_return() -> None:
    x, y, last = _tiny_training_set()
    # training hits of "sign continues": (last > 0) == (y > 0) on rows 0, 3, 5, 6, 7 -> 5/10
    persistence = fit_baselines(x, y, last)["persistence"]
    assert persistence == PersistenceBaseline(margin=0.001)  # no edge: the floor keeps the call
    pred, prob = persistence.predict(np.zeros((3, 2)), np.array([0.02, -0.01, 0.0]))
    assert list(pred) == [0.02, -0.01, 0.0]
    assert list(prob) == pytest.approx([0.501, 0.499, 0.499])  # zero last return: "not up"


def test_persistence_margin_is_the_training_edge() -> None:
    last = np.array([0.01, 0.02, -0.01, -0.02])
    y = np.array([0.03, 0.01, -0.01, 0.02])  # three of four continue
    persistence = fit_baselines(last[:, None], y, last)["persistence"]
    assert persistence.margin == pytest.approx(0.25)


def test_random_walk_predicts_no_change() -> None:
    pred, prob = RandomWalkBaseline().predict(np.zeros((2, 1)), np.array([0.5, -0.5]))
    assert list(pred) == [0.0, 0.0]
    assert list(prob) == [0.5, 0.5]


def test_fit_baselines_returns_the_four_named_baselines() -> None:
    x, y, last = _tiny_training_set()
    fitted = fit_baselines(x, y, last)
    assert sorted(fitted) == ["linear", "majority", "persistence", "random_walk"]
    assert all(b.name == key for key, b in fitted.items())


def test_linear_matches_sklearn_ridge_and_logistic() -> None:
    linear_model = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5)) * [1.0, 10.0, 0.1, 3.0, 1.0] + [0.0, 5.0, -1.0, 0.0, 2.0]
    y = 0.01 * (x[:, 0] - 0.2 * x[:, 1]) + rng.normal(0, 0.05, 400)
    fitted = fit_linear(x, y, ridge_alpha=3.0, logistic_l2=0.5)
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    ridge = linear_model.Ridge(alpha=3.0).fit(z, y)
    logistic = linear_model.LogisticRegression(C=2.0, tol=1e-12, max_iter=10_000).fit(z, y > 0)
    np.testing.assert_allclose(fitted.ridge_coef, ridge.coef_, atol=1e-10)
    assert fitted.ridge_intercept == pytest.approx(ridge.intercept_, abs=1e-12)
    np.testing.assert_allclose(fitted.logit_coef, logistic.coef_[0], atol=1e-6)
    assert fitted.logit_intercept == pytest.approx(logistic.intercept_[0], abs=1e-6)
    x_new = rng.normal(size=(50, 5))
    pred, prob = fitted.predict(x_new, np.zeros(50))
    z_new = (x_new - x.mean(axis=0)) / x.std(axis=0)  # scaled with the TRAINING statistics
    np.testing.assert_allclose(pred, ridge.predict(z_new), atol=1e-10)
    np.testing.assert_allclose(prob, logistic.predict_proba(z_new)[:, 1], atol=1e-6)


def test_linear_standardisation_comes_from_training_rows_only() -> None:
    x_train = np.array([[0.0], [2.0], [4.0]])
    y = np.array([-0.01, 0.01, 0.03])
    fitted = fit_linear(x_train, y, ridge_alpha=0.0)
    assert float(fitted.mean[0]) == 2.0
    assert float(fitted.scale[0]) == pytest.approx(np.std([0.0, 2.0, 4.0]))
    # an exact linear relation: y = 0.01 * x - 0.01, recovered out of sample too
    pred, _ = fitted.predict(np.array([[10.0]]), np.zeros(1))
    assert pred[0] == pytest.approx(0.09)


def test_linear_with_a_constant_feature_and_one_class() -> None:
    x = np.column_stack([np.ones(6), np.arange(6.0)])  # the constant column keeps scale 1
    y = np.array([0.01, 0.02, 0.01, 0.03, 0.02, 0.01])  # every training row is up
    fitted = fit_linear(x, y)
    assert np.all(np.isfinite(fitted.ridge_coef))
    _, prob = fitted.predict(x, np.zeros(6))
    assert np.all(prob > 0.99)
    assert np.all(prob < 1.0)


def test_linear_reduces_sequence_windows_to_the_last_step() -> None:
    rng = np.random.default_rng(4)
    windows = rng.normal(size=(60, 8, 3))
    y = rng.normal(size=60)
    from_windows = fit_linear(windows, y)
    from_last = fit_linear(windows[:, -1, :], y)
    np.testing.assert_allclose(from_windows.ridge_coef, from_last.ridge_coef)
    np.testing.assert_allclose(
        from_windows.predict(windows, y)[1], from_last.predict(windows[:, -1, :], y)[1]
    )


@pytest.mark.parametrize(
    ("x", "y", "last", "message"),
    [
        (np.zeros((3, 2)), np.zeros(2), np.zeros(2), "rows"),  # features and targets misaligned
        (np.zeros((3, 2)), np.zeros(3), np.zeros(2), "last_return_train"),  # last misaligned
        (np.zeros((0, 2)), np.zeros(0), np.zeros(0), "non-empty"),  # no training rows
        (np.full((3, 1), np.nan), np.zeros(3), np.zeros(3), "NaN"),  # a missing feature
        (np.zeros(3), np.zeros(3), np.zeros(3), "samples, features"),  # a 1-D feature vector
    ],
)
def test_fit_baselines_rejects_bad_input(
    x: np.ndarray, y: np.ndarray, last: np.ndarray, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        fit_baselines(x, y, last)


def test_linear_rejects_a_different_feature_count() -> None:
    fitted = fit_linear(np.random.default_rng(1).normal(size=(20, 3)), np.linspace(-1, 1, 20))
    assert isinstance(fitted, LinearBaseline)
    with pytest.raises(DataError, match="fitted on 3"):
        fitted.predict(np.zeros((2, 4)), np.zeros(2))


def _btc_hourly_returns(path: Path) -> np.ndarray:
    """Hourly close-to-close returns of real BTCUSDT, with returns across gaps dropped (NaN)."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    times = np.array([datetime.fromisoformat(r["open_time"]).timestamp() for r in rows])
    close = np.array([float(r["close"]) for r in rows])
    returns = close[1:] / close[:-1] - 1.0
    returns[np.diff(times) != 3600] = np.nan
    return returns


def test_baselines_on_real_btc_hours_are_near_a_coin_flip(
    shared_data: Callable[[str], Path],
) -> None:
    returns = _btc_hourly_returns(shared_data("btcusdt_1h_spot_2020-10_2023-12.csv"))
    lags = 24
    # row t: features r[t-23..t] (known at the close of hour t), target r[t+1]
    windows = np.lib.stride_tricks.sliding_window_view(returns[:-1], lags)
    target = returns[lags:]
    keep = np.isfinite(windows).all(axis=1) & np.isfinite(target)
    x, y = windows[keep], target[keep]
    last = x[:, -1]
    split = int(0.7 * len(y))  # chronological: train on the past, test on the future
    fitted = fit_baselines(x[:split], y[:split], last[:split])
    accuracies = {}
    for name, baseline in fitted.items():
        pred, prob = baseline.predict(x[split:], last[split:])
        metrics = evaluate_horizon(y[split:], pred, prob)
        accuracies[name] = metrics.directional_accuracy
        # honest 1 h crypto direction is ~50-56 %; anything above 60 % would be a leak
        assert 0.44 < metrics.directional_accuracy < 0.56, (name, metrics.to_dict())
    assert accuracies["random_walk"] == pytest.approx(1 - float(np.mean(y[split:] > 0)))
    # the same linear model handed the future return as a feature: the leak is glaring
    leaky_x = np.column_stack([x, y])
    leaky = fit_linear(leaky_x[:split], y[:split])
    pred, prob = leaky.predict(leaky_x[split:], last[split:])
    assert evaluate_horizon(y[split:], pred, prob).directional_accuracy > 0.95
