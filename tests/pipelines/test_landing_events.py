"""What the live lander lands, told to Dagster: the runless materialization of a bronze batch, and
the automation it sets off (silver, gold and, where a model exists, predictions) in one tick and
one run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from assets.ml import PRICE_MODEL_KEY
from pipelines.definitions import LiveSwitches, build_definitions
from pipelines.landing_events import LANDED_BY, report_landed
from pipelines.simulator import simulate_candles
from warehouse.bronze import REJECTS_TABLE, LandedBatch, RawRecord, land_batch
from warehouse.lake import Lake
from warehouse.topics import CANDLES, FEAR_GREED, POSTS, TICKERS, TOPICS


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


def land_candles(lake: Lake) -> LandedBatch:
    """Three candles and one message that fails validation, landed as one bronze batch."""
    spec = TOPICS[CANDLES]
    values = [json.dumps(m).encode() for m in simulate_candles(["BTCUSDT"], hours=3, seed=1)]
    values.append(b'{"symbol": "BTCUSDT"}')
    records = [RawRecord(spec.topic, 1, 40 + i, 0, None, v) for i, v in enumerate(values)]
    return land_batch(
        spec,
        records,
        bronze=lake.location(spec.table),
        rejects=lake.location(REJECTS_TABLE),
        expected={1: None},
    )


def test_a_landed_batch_is_a_materialization_of_its_bronze_asset(
    instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    landed = land_candles(Lake(str(tmp_path / "lake")))
    report_landed(instance, TOPICS[CANDLES], landed)

    event = instance.get_latest_materialization_event(dg.AssetKey(["bronze", "candles"]))
    assert event is not None and event.run_id == ""  # runless: no Dagster run landed it
    materialization = event.asset_materialization
    assert materialization is not None
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    assert (metadata["rows"], metadata["rejects"]) == (3, 1)
    assert metadata["offsets"] == {"1": {"first": 40, "last": 43}}
    assert metadata["table_version"] == landed.table_version == 0
    assert metadata["landed_by"] == LANDED_BY == "marketlake live lander"
    assert metadata["topic"] == "market.candles"
    assert materialization.description == (
        "market.candles offsets 1@40..43 landed into bronze/candles v0 "
        "by the marketlake live lander"
    )


@pytest.mark.parametrize(
    ("topic", "key"),
    [
        # each topic's batch materializes the bronze asset of its own table
        (CANDLES, "bronze/candles"),
        (TICKERS, "bronze/tickers"),
        (POSTS, "bronze/posts"),
        (FEAR_GREED, "bronze/fear_greed"),
    ],
)
def test_each_topic_reports_its_own_bronze_asset(
    instance: dg.DagsterInstance, topic: str, key: str
) -> None:
    landed = LandedBatch(rows=2, rejects=0, bytes=10, table_version=5, offsets={0: (7, 8)})
    report_landed(instance, TOPICS[topic], landed)
    asset = dg.AssetKey.from_user_string(key)
    event = instance.get_latest_materialization_event(asset)
    assert event is not None
    assert event.asset_materialization is not None
    assert event.asset_materialization.metadata["table_version"].value == 5


@pytest.mark.parametrize(
    ("model", "requested"),
    [
        # no model yet: bronze to gold (and the served accuracy that follows gold)
        (False, {"silver/candles", "gold/features", "ml/served_live_accuracy"}),
        # a model exists: its predictions, their live accuracy and the paper portfolio follow
        # in the same tick
        (
            True,
            {
                *("silver/candles", "gold/features", "ml/served_live_accuracy"),
                *("ml/predictions", "ml/live_accuracy", "ml/paper_portfolio"),
            },
        ),
    ],
    ids=["no model", "model"],
)
def test_a_landed_candle_batch_sets_off_the_flow_in_one_tick(
    instance: dg.DagsterInstance, tmp_path: Path, model: bool, requested: set[str]
) -> None:
    defs = build_definitions(LiveSwitches())
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    if model:  # Dagster saw a training (the price model asset materialized)
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=PRICE_MODEL_KEY))
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    report_landed(instance, TOPICS[CANDLES], land_candles(Lake(str(tmp_path / "lake"))))

    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    assert {k.to_user_string() for k in keys if result.get_num_requested(k)} == requested


def test_the_requests_of_one_tick_are_one_run(instance: dg.DagsterInstance, tmp_path: Path) -> None:
    # The daemon turns a tick's requests into runs with the code a sensor evaluated in user code
    # uses (AutomationTickEvaluationContext). A twin of live_automation evaluated that way, with
    # the same target, shows the runs the daemon launches: unpartitioned assets requested in one
    # tick share ONE run (their checks included), not one run per asset.
    defs = build_definitions(LiveSwitches())
    twin = dg.AutomationConditionSensorDefinition(
        "live_automation_twin",
        target=defs.resolve_sensor_def("live_automation").asset_selection,
        use_user_code_server=True,
    )
    twin_defs = dg.Definitions(
        assets=defs.assets,
        asset_checks=defs.asset_checks,
        sensors=[twin],
        resources=defs.resources,
    )

    def tick(cursor: str | None) -> tuple[list[dg.RunRequest], str | None]:
        with dg.build_sensor_context(
            instance=instance, definitions=twin_defs, cursor=cursor
        ) as context:
            data = twin_defs.resolve_sensor_def(twin.name).evaluate_tick(context)
        return list(data.run_requests or []), data.cursor

    _, cursor = tick(None)
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=PRICE_MODEL_KEY))
    report_landed(instance, TOPICS[CANDLES], land_candles(Lake(str(tmp_path / "lake"))))
    [run], _ = tick(cursor)
    selected = set(run.asset_selection or [])
    assert {k.to_user_string() for k in selected} == {
        *("silver/candles", "gold/features", "ml/predictions"),
        *("ml/live_accuracy", "ml/served_live_accuracy", "ml/paper_portfolio"),
    }
    # with every check of those assets, so the blocking ones guard the assets below them
    checks = {k for c in defs.asset_checks for k in c.check_keys if k.asset_key in selected}  # type: ignore[union-attr]
    assert set(run.asset_check_keys or []) == checks
    assert {k.asset_key.to_user_string() for k in checks} == {
        *("silver/candles", "gold/features", "ml/paper_portfolio"),
    }
