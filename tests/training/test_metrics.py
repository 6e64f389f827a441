"""Evaluation metrics: hand-computed values, scipy/sklearn references, leak and coin-flip checks."""

from __future__ import annotations

import json
import math
from statistics import NormalDist

import numpy as np
import pytest
from scipy import stats

from training.metrics import (
    CalibrationBin,
    accuracy_difference_ci,
    balanced_accuracy,
    block_bootstrap_ci,
    brier_score,
    calibration_table,
    direction_hits,
    evaluate_horizon,
    expected_calibration_error,
    matthews_corrcoef,
    p_value_vs,
    rank_ic,
    wilson_interval,
)
from warehouse.errors import DataError


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        (8, 10, 0.4902, 0.9433),  # textbook example (Newcombe 1998 style), 80 % of 10
        (0, 10, 0.0, 0.2775),  # no success: lower bound pinned at 0, upper well above 0
        (10, 10, 0.7225, 1.0),  # all successes: mirror image of the previous case
        (50, 100, 0.4038, 0.5962),  # a coin flip of 100: symmetric about 0.5
        (540, 1000, 0.5090, 0.5707),  # 54 % on 1000 samples: CI excludes 0.5, barely
    ],
)
def test_wilson_interval_known_values(successes: int, n: int, low: float, high: float) -> None:
    got_low, got_high = wilson_interval(successes, n)
    assert got_low == pytest.approx(low, abs=5e-5)
    assert got_high == pytest.approx(high, abs=5e-5)
    reference = stats.binomtest(successes, n).proportion_ci(0.95, method="wilson")
    assert (got_low, got_high) == pytest.approx((reference.low, reference.high), abs=1e-12)


@pytest.mark.parametrize(("successes", "n"), [(3, 7), (512, 1000), (9_000, 17_000)])
def test_wilson_bounds_are_where_the_score_test_hits_z(successes: int, n: int) -> None:
    # the Wilson interval inverts the score test: at each bound |p - p0| / se(p0) == z
    z = NormalDist().inv_cdf(0.975)
    p = successes / n
    for bound in wilson_interval(successes, n):
        assert abs(p - bound) / math.sqrt(bound * (1 - bound) / n) == pytest.approx(z, rel=1e-9)


@pytest.mark.parametrize(("successes", "n"), [(-1, 10), (11, 10), (0, 0)])
def test_wilson_rejects_impossible_counts(successes: int, n: int) -> None:
    with pytest.raises(DataError, match="Wilson"):
        wilson_interval(successes, n)


@pytest.mark.parametrize(
    ("actual", "predicted", "expected"),
    [
        # tp=3 tn=2 fp=1 fn=2: (6 - 2) / sqrt(4 * 5 * 3 * 4) = 4 / sqrt(240)
        ([1, 1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0, 1], 4 / math.sqrt(240)),
        ([1, 0, 1, 0], [1, 0, 1, 0], 1.0),  # perfect calls
        ([1, 0, 1, 0], [0, 1, 0, 1], -1.0),  # perfectly wrong calls
        ([1, 0, 1, 0], [1, 1, 1, 1], 0.0),  # constant calls: undefined, reported as 0
        ([1, 1, 1, 1], [1, 0, 1, 0], 0.0),  # a single realised class: undefined, 0
    ],
)
def test_mcc_table(actual: list[int], predicted: list[int], expected: float) -> None:
    got = matthews_corrcoef(np.array(actual, bool), np.array(predicted, bool))
    assert got == pytest.approx(expected, abs=1e-12)


def test_mcc_and_balanced_accuracy_match_sklearn_on_random_calls() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(7)
    actual = rng.random(500) < 0.55
    predicted = rng.random(500) < 0.7
    assert matthews_corrcoef(actual, predicted) == pytest.approx(
        metrics.matthews_corrcoef(actual, predicted), abs=1e-12
    )
    assert balanced_accuracy(actual, predicted) == pytest.approx(
        metrics.balanced_accuracy_score(actual, predicted), abs=1e-12
    )


@pytest.mark.parametrize(
    ("actual", "predicted", "expected"),
    [
        ([1, 1, 1, 0], [1, 1, 0, 0], (2 / 3 + 1) / 2),  # recall up 2/3, recall down 1
        ([1, 1, 1, 0], [1, 1, 1, 1], 0.5),  # majority call: accuracy 0.75 but balanced 0.5
        ([1, 1, 0, 0], [0, 0, 1, 1], 0.0),  # all wrong
        ([1, 1, 1, 1], [1, 0, 1, 1], 0.75),  # only ups realised: the up recall alone
    ],
)
def test_balanced_accuracy_table(actual: list[int], predicted: list[int], expected: float) -> None:
    got = balanced_accuracy(np.array(actual, bool), np.array(predicted, bool))
    assert got == pytest.approx(expected)


@pytest.mark.parametrize(
    ("outcome", "prob", "expected"),
    [
        ([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5], 0.25),  # the coin flip scores 0.25
        ([1, 0], [1.0, 0.0], 0.0),  # certain and right
        ([1, 0], [0.0, 1.0], 1.0),  # certain and wrong
        ([1, 0, 1], [0.8, 0.3, 0.6], (0.04 + 0.09 + 0.16) / 3),  # by hand
    ],
)
def test_brier_table(outcome: list[int], prob: list[float], expected: float) -> None:
    assert brier_score(np.array(outcome), np.array(prob)) == pytest.approx(expected)


def test_calibration_table_by_hand() -> None:
    prob = np.array([0.05, 0.15, 0.12, 0.55, 0.58, 0.95, 1.0])
    outcome = np.array([0, 1, 0, 1, 1, 1, 0])
    table = calibration_table(prob, outcome, n_bins=10)
    # empty bins are left out; p == 1.0 goes to the last bin
    assert [b.count for b in table] == [1, 2, 2, 2]
    assert [b.bin_low for b in table] == pytest.approx([0.0, 0.1, 0.5, 0.9])
    second = table[1]
    assert second.mean_predicted == pytest.approx(0.135)
    assert second.observed_frequency == pytest.approx(0.5)
    assert table[-1].mean_predicted == pytest.approx(0.975)
    assert table[-1].observed_frequency == pytest.approx(0.5)
    # ECE: (1*0.05 + 2*|0.135-0.5| + 2*|0.565-1| + 2*|0.975-0.5|) / 7
    expected_ece = (0.05 + 2 * 0.365 + 2 * 0.435 + 2 * 0.475) / 7
    assert expected_calibration_error(table) == pytest.approx(expected_ece)


def test_rank_ic_matches_scipy_spearman_with_ties() -> None:
    rng = np.random.default_rng(3)
    realised = rng.normal(size=400)
    pred = np.round(0.3 * realised + rng.normal(size=400), 1)  # rounding makes ties
    expected = stats.spearmanr(pred, realised).statistic
    assert rank_ic(pred, realised) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("pred", "realised"),
    [
        ([0.0, 0.0, 0.0], [0.1, -0.2, 0.3]),  # constant forecast (random walk): 0, not NaN
        ([0.1, 0.2, 0.3], [0.5, 0.5, 0.5]),  # constant realised
        ([0.1], [0.2]),  # a single sample
    ],
)
def test_rank_ic_is_zero_when_undefined(pred: list[float], realised: list[float]) -> None:
    assert rank_ic(np.array(pred), np.array(realised)) == 0.0


@pytest.mark.parametrize(
    ("model", "baseline", "expected"),
    [
        ([1, 1, 1, 1, 1], [0, 0, 0, 0, 0], 1 / 32),  # 5 wins, 0 losses: 0.5 ** 5
        ([1, 1, 1, 0], [1, 1, 1, 0], 1.0),  # no discordant pair: no evidence
        ([0, 0, 0], [1, 1, 1], 1.0),  # 0 wins of 3: P(X >= 0) = 1
        ([1, 0, 1, 1, 1, 1], [0, 1, 0, 0, 1, 1], 5 / 16),  # 3 wins 1 loss: (4 + 1) / 16
    ],
)
def test_p_value_vs_table(model: list[int], baseline: list[int], expected: float) -> None:
    assert p_value_vs(np.array(model), np.array(baseline)) == pytest.approx(expected)


def test_p_value_vs_matches_scipy_binomtest_on_discordant_pairs() -> None:
    rng = np.random.default_rng(11)
    model = rng.random(2000) < 0.54
    baseline = rng.random(2000) < 0.50
    wins = int(np.sum(model & ~baseline))
    losses = int(np.sum(~model & baseline))
    expected = stats.binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue
    assert p_value_vs(model, baseline) == pytest.approx(expected, rel=1e-12)


def test_p_value_vs_rejects_unpaired_vectors() -> None:
    with pytest.raises(DataError, match="same length"):
        p_value_vs(np.ones(3), np.ones(4))


def test_leaky_predictor_scores_perfectly() -> None:
    # a "model" that reads the future return: the metrics must show it (and a report must flag it)
    rng = np.random.default_rng(42)
    realised = rng.normal(0.0, 0.01, size=5000)
    leaked_prob = 1 / (1 + np.exp(-realised / 0.001))
    m = evaluate_horizon(realised, realised, leaked_prob)
    assert m.directional_accuracy > 0.99
    assert m.ci_low > 0.98
    assert m.mcc > 0.98
    assert m.rank_ic == pytest.approx(1.0)
    assert m.mae == 0.0
    assert m.mae_ratio_rw == 0.0


def test_independent_random_predictor_is_a_coin_flip() -> None:
    rng = np.random.default_rng(1234)
    realised = rng.normal(0.0, 0.01, size=5000)
    prob = rng.random(5000)
    pred = rng.normal(0.0, 0.01, size=5000)
    m = evaluate_horizon(realised, pred, prob, bootstrap_block_length=24)
    assert m.ci_low <= 0.5 <= m.ci_high
    assert m.ci_low_block is not None and m.ci_high_block is not None
    assert m.ci_low_block <= 0.5 <= m.ci_high_block
    assert abs(m.mcc) < 0.05
    assert abs(m.rank_ic) < 0.05
    assert m.rmse_ratio_rw > 1.3  # noise forecasts are worse than predicting no change


def test_evaluate_horizon_by_hand() -> None:
    realised = np.array([0.02, -0.01, 0.0, 0.03])  # ups: 1, 0, 0 (zero is not up), 1
    pred = np.array([0.01, 0.01, -0.01, 0.0])
    prob = np.array([0.7, 0.6, 0.5, 0.4])  # calls: up, up, not up (0.5), not up
    m = evaluate_horizon(realised, pred, prob)
    assert m.n == 4
    assert m.up_rate == 0.5
    assert m.pred_up_rate == 0.5
    assert m.directional_accuracy == 0.5  # right on rows 0 and 2
    assert (m.ci_low, m.ci_high) == pytest.approx(wilson_interval(2, 4))
    assert m.balanced_accuracy == 0.5
    assert m.mcc == 0.0
    assert m.brier == pytest.approx((0.09 + 0.36 + 0.25 + 0.36) / 4)
    assert m.return_sign_accuracy == 0.5  # pred > 0 on rows 0, 1: right on 0 and 2
    assert m.mae == pytest.approx((0.01 + 0.02 + 0.01 + 0.03) / 4)
    assert m.rmse == pytest.approx(math.sqrt((1e-4 + 4e-4 + 1e-4 + 9e-4) / 4))
    assert m.mae_ratio_rw == pytest.approx(0.0175 / 0.015)
    assert m.rmse_ratio_rw == pytest.approx(m.rmse / math.sqrt(14e-4 / 4))
    assert m.ci_low_block is None
    assert list(direction_hits(realised, prob)) == [True, False, True, False]


def test_random_walk_forecast_has_level_ratios_of_one() -> None:
    realised = np.array([0.01, -0.02, 0.005, 0.0])
    m = evaluate_horizon(realised, np.zeros(4), np.full(4, 0.5))
    assert m.mae_ratio_rw == 1.0
    assert m.rmse_ratio_rw == 1.0
    assert m.rank_ic == 0.0
    assert m.mcc == 0.0
    assert m.pred_up_rate == 0.0  # 0.5 is a "not up" call


def test_metrics_serialise_for_json_and_mlflow() -> None:
    realised = np.zeros(3)  # every return is zero: the random-walk ratios are undefined
    m = evaluate_horizon(realised, np.zeros(3), np.full(3, 0.2))
    payload = m.to_dict()
    json.dumps(payload, allow_nan=False)
    assert payload["mae_ratio_rw"] is None
    assert payload["calibration"] == [
        {
            "bin_low": pytest.approx(0.2),
            "bin_high": pytest.approx(0.3),
            "count": 3,
            "mean_predicted": pytest.approx(0.2),
            "observed_frequency": 0.0,
        }
    ]
    scalars = m.scalars(prefix="h1_")
    assert "h1_mae_ratio_rw" not in scalars
    assert "h1_ci_low_block" not in scalars
    assert scalars["h1_directional_accuracy"] == 1.0
    assert all(math.isfinite(v) for v in scalars.values())


@pytest.mark.parametrize(
    ("realised", "pred", "prob", "message"),
    [
        ([], [], [], "n=0"),  # nothing to evaluate
        ([0.1, 0.2], [0.1], [0.5, 0.5], "same length"),  # misaligned arrays
        ([0.1, float("nan")], [0.1, 0.1], [0.5, 0.5], "NaN"),  # a missing target
        ([0.1, 0.2], [0.1, 0.1], [0.5, 1.2], "outside"),  # not a probability
        ([[0.1, 0.2]], [[0.1, 0.1]], [[0.5, 0.5]], "1-D"),  # wrong shape
    ],
)
def test_evaluate_horizon_rejects_bad_input(
    realised: list[float], pred: list[float], prob: list[float], message: str
) -> None:
    with pytest.raises(DataError, match=message):
        evaluate_horizon(np.array(realised), np.array(pred), np.array(prob))


def test_block_bootstrap_with_blocks_of_one_matches_the_binomial_width() -> None:
    rng = np.random.default_rng(5)
    hits = (rng.random(4000) < 0.53).astype(float)
    low, high = block_bootstrap_ci(hits, block_length=1, n_resamples=4000, seed=1)
    w_low, w_high = wilson_interval(int(hits.sum()), len(hits))
    assert low == pytest.approx(w_low, abs=0.004)
    assert high == pytest.approx(w_high, abs=0.004)


def test_block_bootstrap_widens_for_autocorrelated_hits() -> None:
    # runs of 48 identical outcomes: the effective sample size is ~n/48
    rng = np.random.default_rng(9)
    hits = np.repeat(rng.random(100) < 0.5, 48).astype(float)
    low, high = block_bootstrap_ci(hits, block_length=96, seed=2)
    w_low, w_high = wilson_interval(int(hits.sum()), len(hits))
    assert (high - low) > 3 * (w_high - w_low)
    assert low <= hits.mean() <= high


def test_block_bootstrap_is_reproducible_and_validates() -> None:
    hits = np.tile([1.0, 0.0, 1.0], 100)
    assert block_bootstrap_ci(hits, seed=3) == block_bootstrap_ci(hits, seed=3)
    assert block_bootstrap_ci(hits, block_length=10_000) == (pytest.approx(2 / 3),) * 2
    with pytest.raises(DataError, match="block_length"):
        block_bootstrap_ci(hits, block_length=0)


def test_accuracy_difference_ci_sees_a_real_edge_and_no_edge() -> None:
    rng = np.random.default_rng(21)
    baseline = rng.random(6000) < 0.5
    better = baseline | (rng.random(6000) < 0.2)  # fixes ~10 % of the samples
    low, _ = accuracy_difference_ci(better, baseline)
    assert low > 0.05
    same_low, same_high = accuracy_difference_ci(rng.random(6000) < 0.5, baseline)
    assert same_low < 0.0 < same_high


def test_calibration_bins_are_plain_dicts() -> None:
    b = CalibrationBin(0.1, 0.2, 3, 0.15, 1 / 3)
    assert b.to_dict()["count"] == 3


def test_evaluation_figures_render_png(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
    from training.plots import calibration_figure, predicted_vs_realised_figure, save_png

    rng = np.random.default_rng(0)
    realised = rng.normal(size=300)
    prob = rng.random(300)
    m = evaluate_horizon(realised, 0.5 * realised, prob)
    for name, fig in [
        ("calibration.png", calibration_figure(m.calibration)),
        ("calibration_dicts.png", calibration_figure(m.to_dict()["calibration"])),
        ("scatter.png", predicted_vs_realised_figure(0.5 * realised, realised)),
    ]:
        path = save_png(fig, tmp_path / "figs" / name)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(DataError, match="empty"):
        calibration_figure([])
