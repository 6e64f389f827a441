"""The Dagster graph: asset keys, dependencies, the sensor's run requests."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import dagster as dg
import pytest

from pipelines.kafka_io import ensure_topics, make_producer, produce_messages
from pipelines.resources import KafkaResource, LakeResource
from pipelines.sensors import candles_lag_sensor, lag_run_key
from pipelines.simulator import simulate_candles
from warehouse.topics import CANDLES, TOPICS


def test_definitions_load_with_the_asset_graph() -> None:
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {
        *("bronze/candles", "bronze/posts", "bronze/tickers", "bronze/fear_greed"),
        *("silver/candles", "silver/posts", "silver/tickers", "silver/fear_greed"),
        *("gold/features", "ml/price_model"),
        *("ml/evaluation", "ml/predictions", "ml/live_accuracy", "ml/served_live_accuracy"),
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
    assert defs.resolve_schedule_def("weekly_evaluation").cron_schedule == "0 3 * * 1"
    assert defs.resolve_schedule_def("daily_training").cron_schedule == "0 4 * * *"
    assert defs.resolve_job_def("ingest_candles") is not None
    assert defs.resolve_sensor_def("candles_lag_sensor") is not None
    for name in ("tickers", "posts", "fear_greed"):
        assert defs.resolve_job_def(f"ingest_{name}") is not None
        assert defs.resolve_sensor_def(f"{name}_lag_sensor") is not None
    assert defs.resolve_schedule_def("nightly_lake_maintenance").cron_schedule == "30 2 * * *"


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
