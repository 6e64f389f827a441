"""The automation conditions, tick by tick, on small graphs and on the real definitions.

``follows_upstream`` is compared with Dagster's ``eager`` where they differ: a dependency that
updates while the asset's own run ends, an asset updated in the previous tick whose dependency is
requested now, and an optional input that never arrived (``required``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pytest

from assets.automation import follows_upstream
from assets.bronze import BRONZE_CANDLES_KEY
from assets.gold import GOLD_FEATURES_KEY
from assets.ml import EVALUATION_KEY, PRICE_MODEL_KEY
from pipelines.definitions import all_assets, asset_modules
from pipelines.resources import default_resources

SOURCE = dg.AssetSpec("source")
OPTIONAL = dg.AssetSpec("optional_source")


def chain(condition: dg.AutomationCondition, *, check_passes: bool = True) -> list[Any]:
    """source (reported, like bronze) -> middle -> leaf, both with ``condition``; middle has a
    blocking ERROR check that passes or not."""

    @dg.asset(deps=[SOURCE], automation_condition=condition)
    def middle() -> None: ...

    @dg.asset(deps=[middle], automation_condition=condition)
    def leaf() -> None: ...

    @dg.asset_check(asset=middle, blocking=True)
    def middle_is_valid() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=check_passes, severity=dg.AssetCheckSeverity.ERROR)

    return [SOURCE, middle, leaf, middle_is_valid]


@dataclass
class Ticks:
    """Evaluate conditions the way the automation sensor does, with runs in between."""

    definitions: list[Any]
    instance: dg.DagsterInstance
    resources: dict[str, Any] = field(default_factory=dict)
    cursor: Any = None
    log: list[set[str]] = field(default_factory=list)

    def tick(self, *, at: datetime | None = None) -> set[str]:
        result = dg.evaluate_automation_conditions(
            defs=self.defs, instance=self.instance, cursor=self.cursor, evaluation_time=at
        )
        self.cursor = result.cursor
        keys = self.defs.resolve_asset_graph().get_all_asset_keys()
        requested = {k.to_user_string() for k in keys if result.get_num_requested(k)}
        self.log.append(requested)
        return requested

    @property
    def defs(self) -> dg.Definitions:
        assets = [d for d in self.definitions if not isinstance(d, dg.AssetChecksDefinition)]
        checks = [d for d in self.definitions if isinstance(d, dg.AssetChecksDefinition)]
        return dg.Definitions(assets=assets, asset_checks=checks, resources=self.resources)

    def report(self, key: dg.AssetKey | str) -> None:
        """A runless materialization, as the live lander reports a bronze batch."""
        self.instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key))

    def run(self, keys: set[str]) -> dg.ExecuteInProcessResult:
        materializable = [d for d in self.definitions if not isinstance(d, dg.AssetSpec)]
        return dg.materialize(
            materializable,
            selection=[dg.AssetKey.from_user_string(k) for k in keys],
            instance=self.instance,
            raise_on_error=False,
        )


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


FOLLOWS = follows_upstream()
EAGER = dg.AutomationCondition.eager()


@pytest.mark.parametrize(
    ("condition", "after_second_batch"),
    [
        # the batch is pending until middle runs again, and leaf rides along in the same run
        (FOLLOWS, {"middle", "leaf"}),
        # eager: middle's own update and the new batch fall between the same two ticks and the
        # reset wins; the batch waits for the next one
        (EAGER, set()),
    ],
    ids=["follows_upstream", "eager"],
)
def test_a_batch_landing_as_the_run_ends_is_not_dropped(
    instance: dg.DagsterInstance,
    condition: dg.AutomationCondition,
    after_second_batch: set[str],
) -> None:
    ticks = Ticks(chain(condition), instance)
    assert ticks.tick() == set()  # the first evaluation only records where things stand
    ticks.report("source")
    assert ticks.tick() == {"middle", "leaf"}
    assert ticks.run({"middle", "leaf"}).success
    ticks.report("source")  # landed after middle's step, before the next tick
    assert ticks.tick() == after_second_batch


@pytest.mark.parametrize(
    ("condition", "after_leaf_ran"),
    [
        # leaf joins middle's run: the dependency is requested in this very tick
        (FOLLOWS, {"middle", "leaf"}),
        # eager: leaf updated since the previous tick, so the same-tick request of middle is
        # dropped and leaf runs one run later, alone
        (EAGER, {"middle"}),
    ],
    ids=["follows_upstream", "eager"],
)
def test_an_asset_updated_last_tick_joins_the_run_of_its_requested_dependency(
    instance: dg.DagsterInstance,
    condition: dg.AutomationCondition,
    after_leaf_ran: set[str],
) -> None:
    ticks = Ticks(chain(condition), instance)
    ticks.tick()
    ticks.report("source")
    assert ticks.tick() == {"middle", "leaf"}
    assert ticks.run({"middle", "leaf"}).success
    assert ticks.tick() == set()  # one run updated both: nothing is stale
    assert ticks.run({"leaf"}).success  # e.g. by hand
    ticks.report("source")
    assert ticks.tick() == after_leaf_ran


def test_a_failed_run_is_retried_on_new_data_only(instance: dg.DagsterInstance) -> None:
    ticks = Ticks(chain(FOLLOWS), instance)
    ticks.tick()
    ticks.report("source")
    assert ticks.tick() == {"middle", "leaf"}
    # the run failed: nothing was updated; no storm of retries, one per tick
    assert ticks.tick() == set()
    assert ticks.tick() == set()
    ticks.report("source")
    assert ticks.tick() == {"middle", "leaf"}


def test_a_failed_blocking_check_stops_the_flow_until_the_data_is_fixed(
    instance: dg.DagsterInstance,
) -> None:
    ticks = Ticks(chain(FOLLOWS, check_passes=False), instance)
    ticks.tick()
    ticks.report("source")
    assert ticks.tick() == {"middle", "leaf"}
    result = ticks.run({"middle", "leaf"})
    # in the run: middle materialized, its blocking check failed, leaf did not run
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"middle"}
    # and later: leaf does not run alone on the rejected data
    assert ticks.tick() == set()
    # new data: middle runs again with its check, and leaf rides along (blocked in the run
    # if the check fails again)
    ticks.report("source")
    assert ticks.tick() == {"middle", "leaf"}


@pytest.mark.parametrize(
    ("condition", "requested"),
    [
        # only the required input must exist; the optional one may never arrive
        (follows_upstream(required=[SOURCE.key]), {"combined"}),
        # eager waits for every dependency, forever here
        (EAGER, set()),
    ],
    ids=["follows_upstream(required)", "eager"],
)
def test_an_optional_input_that_never_arrived_does_not_block(
    instance: dg.DagsterInstance, condition: dg.AutomationCondition, requested: set[str]
) -> None:
    @dg.asset(deps=[SOURCE, OPTIONAL], automation_condition=condition)
    def combined() -> None: ...

    ticks = Ticks([SOURCE, OPTIONAL, combined], instance)
    ticks.tick()
    ticks.report("source")
    assert ticks.tick() == requested


def real_definitions(gold_condition: dg.AutomationCondition | None = None) -> list[Any]:
    assets = all_assets()
    if gold_condition is not None:
        assets = [
            dg.map_asset_specs(
                lambda spec: (
                    spec.replace_attributes(automation_condition=gold_condition)
                    if spec.key == GOLD_FEATURES_KEY
                    else spec
                ),
                [asset],
            )[0]
            for asset in assets
        ]
    return [*assets, *dg.load_asset_checks_from_modules(asset_modules())]


@pytest.mark.parametrize(
    ("gold_condition", "requested"),
    [
        # the condition of gold/features: candles are enough
        (None, {"silver/candles", "gold/features", "ml/served_live_accuracy"}),
        # eager on gold: silver/posts and silver/fear_greed never materialized, gold waits
        (EAGER, {"silver/candles"}),
    ],
    ids=["gold as defined", "gold with eager"],
)
def test_a_lake_of_candles_only_refreshes_gold(
    instance: dg.DagsterInstance,
    gold_condition: dg.AutomationCondition | None,
    requested: set[str],
) -> None:
    ticks = Ticks(real_definitions(gold_condition), instance, default_resources())
    ticks.tick()
    ticks.report(BRONZE_CANDLES_KEY)  # posts and Fear & Greed never arrive
    assert ticks.tick() == requested


def last_cron_fire(now: datetime, *, hour: int, weekday: int | None = None) -> datetime:
    """The latest moment before ``now`` at ``hour``:00 UTC (on ``weekday``, 0 = Monday)."""
    fire = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    while fire > now or (weekday is not None and fire.weekday() != weekday):
        fire -= timedelta(days=1)
    return fire


@pytest.mark.parametrize(
    ("key", "hour", "weekday"),
    [
        # the daily training at 04:00 UTC
        (PRICE_MODEL_KEY, 4, None),
        # the walk-forward evaluation, Mondays at 03:00 UTC
        (EVALUATION_KEY, 3, 0),
    ],
    ids=["ml/price_model", "ml/evaluation"],
)
def test_training_runs_on_its_cron_once_gold_has_updated(
    instance: dg.DagsterInstance, key: dg.AssetKey, hour: int, weekday: int | None
) -> None:
    fire = last_cron_fire(datetime.now(UTC), hour=hour, weekday=weekday)
    name = key.to_user_string()
    ticks = Ticks(real_definitions(), instance, default_resources())
    ticks.tick(at=fire - timedelta(hours=2))
    ticks.report(GOLD_FEATURES_KEY)
    assert name not in ticks.tick(at=fire - timedelta(hours=1))  # gold moved, no cron yet
    assert name not in ticks.tick(at=fire + timedelta(minutes=1))  # cron, but no gold since
    ticks.report(GOLD_FEATURES_KEY)
    assert name in ticks.tick(at=fire + timedelta(minutes=2))  # the cron, then gold
    assert name not in ticks.tick(at=fire + timedelta(minutes=3))  # once per cron tick


@pytest.mark.parametrize(
    ("required", "requested"),
    [
        # only the required input holds the asset back: a running optional one is read as it is
        ([SOURCE.key], {"combined"}),
        # every input holds it back: under a steady flow one of them is always running (starved)
        (None, set()),
    ],
    ids=["follows_upstream(required)", "follows_upstream()"],
)
def test_a_running_optional_input_does_not_hold_the_asset_back(
    required: list[dg.AssetKey] | None, requested: set[str]
) -> None:
    import threading

    started, release = threading.Event(), threading.Event()

    @dg.asset(deps=[OPTIONAL])
    def optional_silver() -> None:
        started.set()
        release.wait(30)

    @dg.asset(
        deps=[SOURCE, optional_silver], automation_condition=follows_upstream(required=required)
    )
    def combined() -> None: ...

    with dg.instance_for_test() as instance:
        ticks = Ticks([SOURCE, OPTIONAL, optional_silver, combined], instance)
        ticks.tick()
        running = threading.Thread(target=ticks.run, args=({"optional_silver"},))
        running.start()
        try:
            assert started.wait(30)  # optional_silver is in progress in its own run
            ticks.report("source")
            assert ticks.tick() == requested
        finally:
            release.set()
            running.join(timeout=30)
