"""The live flow on a growing lake that only ever receives candles (no posts, no Fear & Greed).

Each round lands new bronze candles, evaluates the automation conditions the way the
``live_automation`` sensor does, and runs exactly what they request, as the daemon would. Every
asset that runs on automation is materialized round after round, and each round adds what it
should: gold grows by the new bars, every new hour is predicted exactly once (also when one
symbol's bar lands an hour late), and the batch and served live accuracy score the outcomes
that the new bars realise.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest
import yaml

from pipelines.definitions import all_assets, asset_modules
from pipelines.landing_events import report_landed
from pipelines.resources import KafkaResource, LakeResource, MlflowResource
from pipelines.simulator import simulate_candles
from serving.prediction_log import PredictionLog
from warehouse.bronze import REJECTS_TABLE, RawRecord, land_batch, stored_offsets
from warehouse.catalog import GOLD_FEATURES, GOLD_PREDICTIONS, GOLD_SERVED_PREDICTIONS
from warehouse.lake import Lake, read_table
from warehouse.topics import CANDLES, TOPICS

SYMBOLS = ("BTCUSDT", "ETHUSDT")
BTC, ETH = SYMBOLS
FIRST_HOURS = 120
"""Hours landed before the first model is trained; the rounds add three more."""
FIRST_MS = 1_699_570_800_000  # 2023-11-09 23:00 UTC, the open time of the first bar
HOUR_MS = 3_600_000
HORIZONS = (1, 2)
SEQUENCE = 6
"""The model reads 6 hours: a symbol's first 5 hours are never predicted."""
FOLLOWERS = {
    "silver/candles",
    "gold/features",
    "ml/predictions",
    "ml/live_accuracy",
    "ml/served_live_accuracy",
    "ml/paper_portfolio",
}
"""What new candles make stale once a model exists."""


def bars() -> dict[tuple[str, int], dict[str, Any]]:
    """(symbol, hour index from 0) -> the simulated bar."""
    hours = FIRST_HOURS + 3
    end_ms = FIRST_MS + (hours - 1) * HOUR_MS
    messages = simulate_candles(SYMBOLS, hours=hours, seed=21, end_ms=end_ms)
    return {
        (str(m["symbol"]), (int(str(m["open_time"])) - FIRST_MS) // HOUR_MS): m for m in messages
    }


def hour(index: int) -> datetime:
    """The open time of bar ``index`` (0: the first)."""
    return datetime.fromtimestamp(FIRST_MS / 1000, UTC) + timedelta(hours=index)


@dataclass
class Flow:
    """A lake, an instance and a registry driven tick by tick like the automation daemon."""

    lake: Lake
    instance: dg.DagsterInstance
    defs: dg.Definitions
    run_config: dict[str, Any]
    bars: dict[tuple[str, int], dict[str, Any]] = field(default_factory=bars)
    cursor: Any = None
    landed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SYMBOLS, 0))

    def land_hours(self, symbol: str, hours: int) -> None:
        """Land the next ``hours`` bars of ``symbol`` into bronze as one batch and report it
        to Dagster, as the live lander does."""
        first_bar = self.landed[symbol]
        messages = [self.bars[(symbol, i)] for i in range(first_bar, first_bar + hours)]
        spec = TOPICS[CANDLES]
        location = self.lake.location(spec.table)
        stored = stored_offsets(location, spec.table, spec.topic, [0])[0]
        start = 0 if stored is None else stored + 1
        records = [
            RawRecord(
                spec.topic, 0, start + i, int(str(m["open_time"])), None, json.dumps(m).encode()
            )
            for i, m in enumerate(messages)
        ]
        landed = land_batch(
            spec,
            records,
            bronze=location,
            rejects=self.lake.location(REJECTS_TABLE),
            expected={0: stored},
        )
        report_landed(self.instance, spec, landed)
        self.landed[symbol] += hours

    def tick(self) -> set[str]:
        """One evaluation of every automation condition; the keys it requests."""
        result = dg.evaluate_automation_conditions(
            defs=self.defs, instance=self.instance, cursor=self.cursor
        )
        self.cursor = result.cursor
        keys = self.defs.resolve_asset_graph().get_all_asset_keys()
        return {k.to_user_string() for k in keys if result.get_num_requested(k)}

    def run(self, keys: set[str]) -> dict[str, dict[str, Any]]:
        """Materialize ``keys`` (and their checks) in one run; asset -> its metadata."""
        ops = {
            op: config for op, config in self.run_config.items() if op.replace("__", "/") in keys
        }
        result = dg.materialize(
            [*all_assets(), *dg.load_asset_checks_from_modules(asset_modules())],
            selection=[dg.AssetKey.from_user_string(k) for k in keys],
            instance=self.instance,
            resources=self.defs.resources,
            run_config={"ops": ops},
        )
        assert result.success
        failed = [
            c.asset_check_key
            for c in result.get_asset_check_evaluations()
            if not c.passed and c.severity == dg.AssetCheckSeverity.ERROR
        ]
        assert failed == []
        return {
            e.asset_key.to_user_string(): {
                k: v.value
                for k, v in e.materialization.metadata.items()  # type: ignore[union-attr]
            }
            for e in result.get_asset_materialization_events()
        }


@pytest.fixture
def flow(tmp_path: Path) -> Iterator[Flow]:
    config = tmp_path / "train.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "horizons": list(HORIZONS),
                "sequence_length": SEQUENCE,
                "hidden_size": 8,
                "max_epochs": 1,
                "batch_size": 128,
            }
        )
    )
    lake = Lake(str(tmp_path / "lake"))
    resources = {
        "kafka": KafkaResource(bootstrap="127.0.0.1:9"),  # bronze is landed by the test
        "lake": LakeResource(uri=lake.uri),
        "mlflow": MlflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"),
    }
    defs = dg.Definitions(
        assets=all_assets(),
        asset_checks=dg.load_asset_checks_from_modules(asset_modules()),
        resources=resources,
    )
    run_config = {"ml__price_model": {"config": {"config_path": str(config), "max_epochs": 1}}}
    with dg.DagsterInstance.ephemeral() as instance:
        yield Flow(lake, instance, defs, run_config)


def predicted_keys(lake: Lake) -> pl.DataFrame:
    return read_table(
        lake.location(GOLD_PREDICTIONS),
        columns=["model_version", "symbol", "ts", "horizon_hours"],
    )


def assert_every_predictable_hour_predicted_once(lake: Lake) -> None:
    stored = predicted_keys(lake)
    assert stored.is_duplicated().sum() == 0
    gold = read_table(lake.location(GOLD_FEATURES), columns=["symbol", "ts"])
    predictable = gold.sort("ts").group_by("symbol").agg(pl.col("ts").slice(SEQUENCE - 1))
    expected = {
        (symbol, ts, h)
        for symbol, hours in predictable.iter_rows()
        for ts in hours
        for h in HORIZONS
    }
    assert set(stored.select("symbol", "ts", "horizon_hours").iter_rows()) == expected


def scored(landed: dict[str, int], predicted_from: int = SEQUENCE - 1) -> tuple[int, int]:
    """(scored, pending) of the batch predictions when ``landed`` hours exist per symbol:
    hour t of horizon h is scored once hour t + h has landed."""
    done = sum(max(0, n - h - predicted_from) for n in landed.values() for h in HORIZONS)
    predicted = sum(max(0, n - predicted_from) for n in landed.values()) * len(HORIZONS)
    return done, predicted - done


def test_every_automated_asset_follows_new_candles_round_after_round(flow: Flow) -> None:
    assert flow.tick() == set()  # an empty lake: nothing to follow
    for symbol in SYMBOLS:
        flow.land_hours(symbol, FIRST_HOURS)

    # first tick: bronze candles exist; silver/posts and silver/fear_greed never will here,
    # yet gold follows candles; no model yet, so no predictions
    requested = flow.tick()
    assert requested == {"silver/candles", "gold/features", "ml/served_live_accuracy"}
    meta = flow.run(requested)
    assert meta["gold/features"]["total_rows"] == 2 * FIRST_HOURS
    assert "skipped" in meta["ml/served_live_accuracy"]  # the service answered nothing yet

    # a champion is trained (the daily cron, or by hand): predictions follow the new model
    trained = flow.run({"ml/price_model"})
    assert trained["ml/price_model"]["model_version"] == 1
    assert flow.tick() == {"ml/predictions", "ml/live_accuracy", "ml/paper_portfolio"}
    meta = flow.run({"ml/predictions", "ml/live_accuracy", "ml/paper_portfolio"})
    assert meta["ml/predictions"]["rows"] == 2 * (FIRST_HOURS - SEQUENCE + 1) * len(HORIZONS)
    assert (meta["ml/live_accuracy"]["scored"], meta["ml/live_accuracy"]["pending"]) == scored(
        flow.landed
    )
    assert_every_predictable_hour_predicted_once(flow.lake)

    # the service answers both symbols' newest hour (4 served rows; outcomes still pending)
    newest = read_table(flow.lake.location(GOLD_PREDICTIONS)).filter(
        pl.col("ts") == hour(FIRST_HOURS - 1)
    )
    served = PredictionLog(flow.lake.location(GOLD_SERVED_PREDICTIONS), flush_s=None)
    for row in newest.drop("predicted_at").iter_rows(named=True):
        served.record(**row, served_at=datetime.now(UTC))
    served.close()

    rounds = [
        # one new hour of both symbols: 2 bars, 2 predicted hours x 2 horizons
        ({BTC: 1, ETH: 1}, 2 * len(HORIZONS), (FIRST_HOURS, FIRST_HOURS)),
        # BTC's next bar lands, ETH's is late: only BTC's hour is predicted
        ({BTC: 1}, 1 * len(HORIZONS), (FIRST_HOURS + 1, FIRST_HOURS + 1)),
        # ETH's late bar and the next hour of both: ETH's late hour is predicted too (BTC's
        # hour of the same time is predicted again and replaces its row: never stored twice)
        ({ETH: 2, BTC: 1}, 4 * len(HORIZONS), (FIRST_HOURS + 1, FIRST_HOURS + 2)),
    ]
    served_scored = [(2, 2), (3, 1), (4, 0)]  # realised outcomes of the 4 served rows
    for (new_bars, predicted_rows, (first, last)), served_score in zip(
        rounds, served_scored, strict=True
    ):
        gold_before = read_table(flow.lake.location(GOLD_FEATURES), columns=["ts"]).height
        for symbol, hours in new_bars.items():
            flow.land_hours(symbol, hours)
        requested = flow.tick()
        assert requested == FOLLOWERS
        meta = flow.run(requested)

        gold = meta["gold/features"]
        assert gold["mode"] == "incremental"
        assert gold["total_rows"] == gold_before + sum(new_bars.values())
        assert meta["silver/candles"]["rows"] == sum(flow.landed.values())

        predictions = meta["ml/predictions"]
        assert predictions["rows"] == predicted_rows
        assert (predictions["first_ts"], predictions["last_ts"]) == (
            hour(first).isoformat(),
            hour(last).isoformat(),
        )
        assert_every_predictable_hour_predicted_once(flow.lake)

        accuracy = meta["ml/live_accuracy"]
        assert (accuracy["scored"], accuracy["pending"]) == scored(flow.landed)
        served_meta = meta["ml/served_live_accuracy"]
        assert served_meta["served_rows"] == 4
        assert (served_meta["scored"], served_meta["pending"]) == served_score

    # nothing new landed: nothing is stale, nothing is requested
    assert flow.tick() == set()
