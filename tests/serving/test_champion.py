"""The service follows the registry's champion: promotions and rollbacks are served without a
restart, a failed load keeps the old model, and no champion is a clear 503, never a crash.

Real components: MLflow on sqlite (a private copy of a registry holding two trained versions) and
Delta on disk; ``test_champion_e2e.py`` runs the same story against a real ``bentoml serve``."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import mlflow
import polars as pl
import pytest
from mlflow.pyfunc import PythonModel
from mlflow.tracking import MlflowClient

from serving.champion import (
    DEFAULT_MODEL_REFRESH_S,
    MODEL_REFRESH_ENV,
    ChampionFollower,
    NoChampionError,
    model_refresh_s,
)
from serving.live_board import BoardSources, LiveBoard
from serving.market import MarketService
from serving.predictions import PredictRequest, PricePredictionService
from serving.signals import SignalService, SignalsRequest
from training.config import MODEL_NAME
from training.registry import (
    PREVIOUS,
    LoadedModel,
    champion_version,
    configure_tracking,
    load_registered,
    promote,
    rollback,
)
from warehouse.catalog import GOLD_FEATURES
from warehouse.errors import ConfigError
from warehouse.lake import Lake, overwrite

SERVICE_LOG = "bentoml.marketlake"


class NotAPriceModel(PythonModel):
    """A registered model that is not a marketlake price model: loading it as one fails."""

    def predict(self, context: Any, model_input: list[str], params: Any = None) -> list[str]:
        return model_input


def register_foreign_model(tracking_uri: str) -> int:
    """Register a :class:`NotAPriceModel` as a new version of the price model; its number."""
    experiment_id = configure_tracking(tracking_uri)
    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=NotAPriceModel(),
            registered_model_name=MODEL_NAME,
            pip_requirements=[],
        )
    assert info.registered_model_version is not None
    return int(info.registered_model_version)


def registry_client(tracking_uri: str) -> MlflowClient:
    """A client of the registry at ``tracking_uri`` (not of the process-wide registry URI)."""
    return MlflowClient(tracking_uri, registry_uri=tracking_uri)


def set_champion(tracking_uri: str, version: int | None) -> None:
    """Point ``champion`` at ``version``; None removes both aliases (no champion yet)."""
    client = registry_client(tracking_uri)
    if version is None:
        for alias in client.get_registered_model(MODEL_NAME).aliases:
            client.delete_registered_model_alias(MODEL_NAME, alias)
    else:
        promote(client, MODEL_NAME, version)


@pytest.fixture
def follower(registry_copy: str) -> ChampionFollower:
    """A follower of the private registry, champion version 1, checked by hand."""
    set_champion(registry_copy, 1)
    return ChampionFollower(registry_copy, MODEL_NAME, refresh_s=60)


@pytest.fixture(scope="module")
def gold_lake(
    gold_frame: Callable[..., pl.DataFrame], tmp_path_factory: pytest.TempPathFactory
) -> Lake:
    lake = Lake(str(tmp_path_factory.mktemp("champion") / "lake"))
    overwrite(lake.location(GOLD_FEATURES), gold_frame(300))
    return lake


# --- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, DEFAULT_MODEL_REFRESH_S),  # unset: the default
        ("", DEFAULT_MODEL_REFRESH_S),  # empty: the default
        (" 2.5 ", 2.5),  # seconds, fractions allowed
        ("1", 1.0),  # what the end-to-end test uses
    ],
)
def test_refresh_interval_from_the_environment(value: str | None, expected: float) -> None:
    assert model_refresh_s({} if value is None else {MODEL_REFRESH_ENV: value}) == expected


@pytest.mark.parametrize(
    "value",
    [
        "0",  # would check in a busy loop
        "-5",  # negative
        "ten",  # not a number
        "nan",  # not a number either
        "inf",  # never checks: a promotion would never be served
    ],
)
def test_a_bad_refresh_interval_is_a_config_error_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match=f"{MODEL_REFRESH_ENV}={value!r}: must be a positive"):
        model_refresh_s({MODEL_REFRESH_ENV: value})


# --- the registry read ----------------------------------------------------------------------


def test_champion_version_reads_the_alias(registry_copy: str) -> None:
    set_champion(registry_copy, 2)
    assert champion_version(registry_copy, MODEL_NAME) == 2
    assert champion_version(registry_copy, MODEL_NAME, PREVIOUS) is not None
    set_champion(registry_copy, None)
    assert champion_version(registry_copy, MODEL_NAME) is None  # alias not set
    assert champion_version(registry_copy, "no-such-model") is None  # model not registered


# --- the follower ---------------------------------------------------------------------------


def test_follows_a_promotion_and_a_rollback(follower: ChampionFollower) -> None:
    first = follower.check()
    assert first is not None and first.version == 1
    assert follower.check() is first  # alias unchanged: nothing reloaded
    set_champion(follower.tracking_uri, 2)
    second = follower.check()
    assert second is not None and second.version == 2 and follower.current is second
    rollback(registry_client(follower.tracking_uri), MODEL_NAME)
    back = follower.check()
    assert back is not None and back.version == 1 and follower.require() is back


def test_no_champion_yet_then_one(registry_copy: str, caplog: pytest.LogCaptureFixture) -> None:
    set_champion(registry_copy, None)
    follower = ChampionFollower(registry_copy, MODEL_NAME, refresh_s=3)
    with caplog.at_level(logging.INFO, logger=SERVICE_LOG):
        assert follower.check() is None
        assert follower.check() is None
    waiting = [r for r in caplog.records if "waiting for a champion model" in r.getMessage()]
    assert len(waiting) == 1  # said once, not at every check
    assert "marketlake train" in waiting[0].getMessage()
    with pytest.raises(NoChampionError) as error:
        follower.require()
    message = str(error.value)
    assert "no champion model is registered yet" in message
    assert "marketlake train" in message and "ml/price_model" in message
    assert "within 3 s" in message
    set_champion(registry_copy, 1)
    loaded = follower.check()
    assert loaded is not None and loaded.version == 1


def test_a_failed_load_keeps_the_old_model_and_is_retried(
    follower: ChampionFollower, caplog: pytest.LogCaptureFixture
) -> None:
    served = follower.check()
    assert served is not None and served.version == 1
    foreign = register_foreign_model(follower.tracking_uri)
    set_champion(follower.tracking_uri, foreign)
    with caplog.at_level(logging.INFO, logger=SERVICE_LOG):
        assert follower.check() is served  # the load failed: version 1 still answers
        assert follower.check() is served  # tried again at the next check, failed again
    failures = [
        r
        for r in caplog.records
        if f"could not load {MODEL_NAME} version {foreign}" in r.getMessage()
    ]
    assert len(failures) == 2 and all(r.levelno == logging.ERROR for r in failures)
    assert "still serving version 1" in failures[0].getMessage()
    assert failures[0].exc_info is not None  # the cause is in the log
    set_champion(follower.tracking_uri, 2)
    recovered = follower.check()
    assert recovered is not None and recovered.version == 2


def test_a_load_that_fails_once_succeeds_at_the_next_check(registry_copy: str) -> None:
    set_champion(registry_copy, 2)
    attempts: list[str] = []

    def flaky(tracking_uri: str, name: str, version: str) -> LoadedModel:
        attempts.append(version)
        if len(attempts) == 1:
            raise OSError("artifact store unreachable")
        return load_registered(tracking_uri, name, version)

    follower = ChampionFollower(registry_copy, MODEL_NAME, refresh_s=60, loader=flaky)
    assert follower.check() is None
    with pytest.raises(NoChampionError, match="version 2 could not be loaded"):
        follower.require()
    loaded = follower.check()
    assert loaded is not None and loaded.version == 2
    assert attempts == ["2", "2"]  # the version seen in the alias, not the alias itself


def test_the_old_model_answers_while_the_new_one_loads(registry_copy: str) -> None:
    set_champion(registry_copy, 1)
    loading, release = threading.Event(), threading.Event()

    def slow_for_version_2(tracking_uri: str, name: str, version: str) -> LoadedModel:
        if version == "2":
            loading.set()
            assert release.wait(30)
        return load_registered(tracking_uri, name, version)

    follower = ChampionFollower(registry_copy, MODEL_NAME, loader=slow_for_version_2)
    old = follower.check()
    assert old is not None
    set_champion(registry_copy, 2)
    checking = threading.Thread(target=follower.check)
    checking.start()
    assert loading.wait(30)
    assert follower.current is old and follower.require() is old  # not blocked, not a mix
    release.set()
    checking.join(30)
    new = follower.current
    assert new is not None and new.version == 2


def test_before_the_first_champion_is_loaded_requests_are_told_it_is_loading(
    registry_copy: str,
) -> None:
    set_champion(registry_copy, 1)
    loading, release = threading.Event(), threading.Event()

    def slow(tracking_uri: str, name: str, version: str) -> LoadedModel:
        loading.set()
        assert release.wait(30)
        return load_registered(tracking_uri, name, version)

    follower = ChampionFollower(registry_copy, MODEL_NAME, loader=slow)
    checking = threading.Thread(target=follower.check)
    checking.start()
    assert loading.wait(30)
    with pytest.raises(NoChampionError, match=f"{MODEL_NAME} version 1 is loading"):
        follower.require()
    release.set()
    checking.join(30)
    assert follower.require().version == 1


def test_the_thread_picks_up_a_promotion_within_the_interval(follower: ChampionFollower) -> None:
    follower.refresh_s = 0.2
    follower.start()
    try:
        first = follower.current
        assert first is not None and first.version == 1  # start() checks at once
        set_champion(follower.tracking_uri, 2)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            current = follower.current
            if current is not None and current.version == 2:
                break
            time.sleep(0.05)
        current = follower.current
        assert current is not None and current.version == 2
    finally:
        follower.stop()


# --- answers name the model that produced them ------------------------------------------------


def test_predictions_and_signals_follow_the_model_version(
    follower: ChampionFollower, gold_lake: Lake, gold_frame: Callable[..., pl.DataFrame]
) -> None:
    follower.check()
    # a long gold refresh: only the model change can invalidate the cache
    predictions = PricePredictionService(follower, gold_lake, refresh_s=3600)
    signals = SignalService(predictions)
    request = PredictRequest(symbol="AAAUSDT", horizon=1)

    def expected(model: LoadedModel) -> float:
        frame = model.predictor.predict_all(gold_frame(300), latest_only=True)
        row = frame.filter(pl.col("symbol") == "AAAUSDT")
        return float(row["direction_probability_1h"][0])

    v1 = predictions.predict(request)
    assert v1.model_version == 1 and v1.model_name == MODEL_NAME
    set_champion(follower.tracking_uri, 2)
    model_2 = follower.check()
    assert model_2 is not None
    v2 = predictions.predict(request)
    assert v2.model_version == 2
    assert v2.direction_probability == pytest.approx(expected(model_2))
    assert v2.direction_probability != pytest.approx(v1.direction_probability)  # other numbers
    signal = signals.signals(SignalsRequest(symbols=["AAAUSDT"]))
    assert signal.model_version == 2
    assert signal.signals[0].direction_probability == v2.direction_probability
    rollback(registry_client(follower.tracking_uri), MODEL_NAME)
    follower.check()
    back = predictions.predict(request)
    assert back.model_version == 1
    assert back.direction_probability == pytest.approx(v1.direction_probability)


def test_without_a_champion_predictions_fail_clearly_and_the_market_still_answers(
    registry_copy: str, small_lake: Callable[..., Lake]
) -> None:
    set_champion(registry_copy, None)
    follower = ChampionFollower(registry_copy, MODEL_NAME)
    follower.check()
    lake = small_lake(hours=80, seed=7)
    predictions = PricePredictionService(follower, lake, refresh_s=0)
    with pytest.raises(NoChampionError, match="no champion model is registered yet"):
        predictions.predict(PredictRequest(symbol="BTCUSDT"))
    with pytest.raises(NoChampionError):
        SignalService(predictions).signals(SignalsRequest())
    board = LiveBoard(BoardSources(lake, MarketService(lake, refresh_s=0), predictions))
    board.poll()
    page = board.snapshot()
    assert page.prices.market is not None and page.predictions.symbols == []
    assert page.predictions.note is not None
    assert "no champion model is registered yet" in page.predictions.note
    assert page.status.champion is None
