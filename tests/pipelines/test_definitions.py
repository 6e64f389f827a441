"""The Dagster graph: asset keys, dependencies, automation, how sensors and schedules start, and
the lag sensor's run requests."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import dagster as dg
import pytest

from assets import ml
from pipelines.definitions import (
    AUTOMATION_INTERVAL_ENV,
    AUTOMATION_SENSOR,
    START_PAUSED_ENV,
    TICK_SLACK_S,
    LiveSwitches,
    build_definitions,
)
from pipelines.kafka_io import ensure_topics, make_producer, produce_messages
from pipelines.resources import KafkaResource, LakeResource
from pipelines.sensors import lag_run_key, lag_sensor
from pipelines.simulator import simulate_candles
from warehouse.errors import ConfigError
from warehouse.topics import CANDLES, TOPICS

AUTOMATED = {
    *("silver/candles", "silver/posts", "silver/tickers", "silver/fear_greed"),
    *("gold/features", "ml/price_model", "ml/evaluation", "ml/predictions"),
    *("ml/live_accuracy", "ml/served_live_accuracy", "ml/paper_portfolio"),
}
SENSORS = {
    AUTOMATION_SENSOR,
    *(f"{t}_lag_sensor" for t in ("candles", "tickers", "posts", "fear_greed")),
}


def test_definitions_load_with_the_asset_graph() -> None:
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {
        *("bronze/candles", "bronze/posts", "bronze/tickers", "bronze/fear_greed"),
        *("silver/candles", "silver/posts", "silver/tickers", "silver/fear_greed"),
        *("gold/features", "ml/price_model"),
        *("ml/evaluation", "ml/predictions", "ml/live_accuracy", "ml/served_live_accuracy"),
        "ml/paper_portfolio",
        "maintenance/lake",
    }

    def parents(key: str) -> set[str]:
        node = graph.get(dg.AssetKey.from_user_string(key))
        return {k.to_user_string() for k in node.parent_keys}

    assert parents("silver/candles") == {"bronze/candles"}
    assert parents("silver/posts") == {"bronze/posts"}
    assert parents("silver/tickers") == {"bronze/tickers"}
    assert parents("silver/fear_greed") == {"bronze/fear_greed"}
    assert parents("gold/features") == {"silver/candles", "silver/posts", "silver/fear_greed"}
    assert parents("ml/price_model") == {"gold/features"}
    assert parents("ml/evaluation") == {"gold/features"}
    assert parents("ml/predictions") == {"ml/price_model", "gold/features"}
    assert parents("ml/live_accuracy") == {"ml/predictions", "gold/features"}
    assert parents("ml/served_live_accuracy") == {"gold/features"}
    assert parents("ml/paper_portfolio") == {"ml/predictions", "silver/candles"}
    assert defs.resolve_job_def("ingest_candles") is not None
    assert defs.resolve_sensor_def("candles_lag_sensor") is not None
    for name in ("tickers", "posts", "fear_greed"):
        assert defs.resolve_job_def(f"ingest_{name}") is not None
        assert defs.resolve_sensor_def(f"{name}_lag_sensor") is not None
    assert defs.resolve_schedule_def("nightly_lake_maintenance").cron_schedule == "30 2 * * *"


def test_every_automated_asset_is_evaluated_by_one_running_sensor() -> None:
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    conditions = {
        key.to_user_string(): graph.get(key).automation_condition.get_label()  # type: ignore[union-attr]
        for key in graph.get_all_asset_keys()
        if graph.get(key).automation_condition is not None
    }
    assert set(conditions) == AUTOMATED
    # training and evaluation run on their crons, everything else follows the layer below
    assert conditions.pop("ml/price_model") == "on_cron(0 4 * * *, UTC)"
    assert conditions.pop("ml/evaluation") == "on_cron(0 3 * * 1, UTC)"
    assert conditions.pop("gold/features") == "follows_upstream(required=silver/candles)"
    assert set(conditions.values()) == {"follows_upstream"}

    sensor = defs.resolve_sensor_def(AUTOMATION_SENSOR)
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    targets = sensor.asset_selection.resolve(graph)
    assert {key.to_user_string() for key in targets} == AUTOMATED
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 5 - TICK_SLACK_S  # evaluated every 5 s


def test_one_mechanism_trains_and_two_trainings_never_overlap() -> None:
    from pipelines.definitions import defs

    # the cron automation conditions are the only trigger: no schedule targets an ml asset
    assert [s.name for s in defs.schedules] == ["nightly_lake_maintenance"]
    assert defs.resolve_schedule_def("nightly_lake_maintenance").cron_schedule == "30 2 * * *"
    # both assets that train share the pool `training`, limited to one slot by dagster.yaml
    assert ml.price_model.op.pool == ml.evaluation.op.pool == "training"
    # the jobs stay for launching them by hand
    assert defs.resolve_job_def("train_price_model") is not None
    assert defs.resolve_job_def("ml_evaluation") is not None


@pytest.mark.parametrize(
    ("env", "running", "interval"),
    [
        # nothing set: everything starts running, automation every 5 s
        ({}, True, 5),
        # the one switch: every sensor and schedule starts stopped
        ({START_PAUSED_ENV: "1"}, False, 5),
        # spelled out
        ({START_PAUSED_ENV: "true"}, False, 5),
        # explicitly not paused
        ({START_PAUSED_ENV: "0"}, True, 5),
        # a slower automation
        ({AUTOMATION_INTERVAL_ENV: "30"}, True, 30),
    ],
)
def test_switches_decide_how_every_sensor_and_schedule_starts(
    env: dict[str, str], running: bool, interval: int
) -> None:
    defs = build_definitions(LiveSwitches.from_env(env))
    sensors = {s.name: s for s in defs.sensors}
    assert set(sensors) == SENSORS
    sensor_status = dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED
    assert {s.default_status for s in sensors.values()} == {sensor_status}
    schedule_status = (
        dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED
    )
    assert {s.default_status for s in defs.schedules} == {schedule_status}
    assert sensors[AUTOMATION_SENSOR].minimum_interval_seconds == interval - TICK_SLACK_S


@pytest.mark.parametrize(
    ("env", "message"),
    [
        # not a yes or no
        ({START_PAUSED_ENV: "maybe"}, "use 1 to start every sensor"),
        # not a number
        ({AUTOMATION_INTERVAL_ENV: "fast"}, "not a whole number"),
        # faster than the asset daemon's loop: accepted by Dagster, never honoured
        ({AUTOMATION_INTERVAL_ENV: "1"}, "at most every 5 s"),
    ],
)
def test_a_switch_it_does_not_understand_is_a_config_error(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        LiveSwitches.from_env(env)


def test_the_instance_launches_queued_runs_every_second(tmp_path: Path) -> None:
    (tmp_path / "dagster.yaml").write_text(
        (Path(__file__).resolve().parents[2] / "dagster.yaml").read_text()
    )
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_coordinator.dequeue_interval_seconds == 1  # type: ignore[attr-defined]
        assert instance.global_op_concurrency_default_limit == 1


def test_run_key_names_the_table_and_offset_ranges() -> None:
    key = lag_run_key("bronze/candles", {1: (40, 90), 0: (7, 7)})
    assert key == "bronze/candles:0@7..7,1@40..90"


def test_sensor_requests_a_run_only_when_kafka_has_new_offsets(
    broker: str, lake_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = f"test.sensor.{uuid.uuid4().hex[:8]}"
    spec = replace(TOPICS[CANDLES], topic=topic)
    ensure_topics(broker, [spec])
    monkeypatch.setitem(TOPICS, CANDLES, spec)
    resources = {"kafka": KafkaResource(bootstrap=broker), "lake": LakeResource(uri=str(lake_dir))}

    candles_lag_sensor = lag_sensor(CANDLES)
    with dg.build_sensor_context(resources=resources) as context:
        idle = candles_lag_sensor(context)
    assert isinstance(idle, dg.SkipReason)

    producer = make_producer(broker)
    produce_messages(producer, topic, "symbol", simulate_candles(["BTCUSDT"], hours=30, seed=3))
    producer.close()
    with dg.build_sensor_context(resources=resources, cursor=None) as context:
        result = candles_lag_sensor(context)
    assert isinstance(result, dg.SensorResult)
    [request] = result.run_requests
    assert request.run_key.startswith("bronze/candles:")
    assert result.cursor == request.run_key

    # once landed, the sensor is quiet again
    KafkaResource(bootstrap=broker).land(spec, LakeResource(uri=str(lake_dir)).lake())
    with dg.build_sensor_context(resources=resources, cursor=request.run_key) as context:
        assert isinstance(candles_lag_sensor(context), dg.SkipReason)
