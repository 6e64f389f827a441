"""Table hygiene: a table of many small commits is compacted, checkpointed and still exact."""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from warehouse.bronze import REJECTS_TABLE, RawRecord, land_batch, stored_offsets
from warehouse.errors import CommitConflictError, ConfigError
from warehouse.lake import Lake, TableLocation, list_tables, open_table, read_table
from warehouse.maintenance import (
    MaintenanceOptions,
    log_retention,
    maintain_lake,
    maintain_table,
    table_health,
)
from warehouse.topics import CANDLES, TOPICS

HOUR_MS = 3_600_000
DAY_S = 86_400
START_MS = 1_700_000_000_000 // HOUR_MS * HOUR_MS


def _candle(offset: int) -> RawRecord:
    value = (
        f'{{"symbol":"BTCUSDT","interval":"1h","open_time":{START_MS + offset * HOUR_MS},'
        f'"open":1,"high":2,"low":0.5,"close":1.5,"volume":3,"source":"t"}}'
    ).encode()
    return RawRecord(CANDLES, 0, offset, START_MS, b"BTCUSDT", value)


def _many_small_commits(lake: Lake, commits: int) -> None:
    spec = TOPICS[CANDLES]
    bronze, rejects = lake.location(spec.table), lake.location(REJECTS_TABLE)
    for offset in range(commits):
        expected = {0: offset - 1 if offset else None}
        land_batch(spec, [_candle(offset)], bronze=bronze, rejects=rejects, expected=expected)


def test_many_small_commits_are_compacted_and_checkpointed(lake_dir: Path) -> None:
    lake = Lake(str(lake_dir))
    _many_small_commits(lake, 60)
    location = lake.location(TOPICS[CANDLES].table)
    before = table_health(location)
    assert before.files == 60 and before.commits_since_checkpoint == 60
    assert before.log_files == 60  # one JSON commit per batch, no automatic checkpoint yet
    report = maintain_table(location, MaintenanceOptions(vacuum_retention_hours=0))
    after = report.after
    assert after.files < 10  # one file per event date (60 hours span 3-4 days)
    assert after.commits_since_checkpoint == 0
    assert report.files_vacuumed == 60  # the small files are gone from storage too
    assert report.log_files_removed == 0  # fresh commits are kept for time travel (30 days)
    assert sorted(Path(location.uri, "_delta_log").glob("*.checkpoint.parquet"))
    # same rows, and the stored Kafka offset survives compaction
    assert read_table(location).height == 60
    assert stored_offsets(location, TOPICS[CANDLES].table, CANDLES, [0]) == {0: 59}
    # an ingest after maintenance goes on exactly where it was
    land_batch(
        TOPICS[CANDLES],
        [_candle(60)],
        bronze=location,
        rejects=lake.location(REJECTS_TABLE),
        expected={0: 59},
    )
    assert read_table(location).height == 61


def _silver_table(lake: Lake) -> None:
    write_deltalake(lake.location("silver/candles").uri, pa.table({"x": [1, 2]}))


def _age_log(location: TableLocation, days: float) -> None:
    aged = time.time() - days * DAY_S
    for path in Path(location.uri, "_delta_log").glob("*.json"):
        os.utime(path, (aged, aged))


def test_the_scheduled_maintenance_asset_cleans_every_table(lake_dir: Path) -> None:
    from assets.maintenance import lake_maintenance, lake_maintenance_schedule
    from pipelines.resources import LakeResource

    lake = Lake(str(lake_dir))
    _many_small_commits(lake, 12)
    _silver_table(lake)
    bronze, silver = lake.location(TOPICS[CANDLES].table), lake.location("silver/candles")
    _age_log(bronze, 3)  # older than the asset's 48-hour bronze retention, inside 30 days
    _age_log(silver, 3)
    assert list_tables(lake) == ["bronze/candles", "silver/candles"]
    result = dg.materialize([lake_maintenance], resources={"lake": LakeResource(uri=str(lake_dir))})
    assert result.success
    [event] = result.get_asset_materialization_events()
    metadata = {k: v.value for k, v in event.materialization.metadata.items()}
    assert metadata["tables"] == 2 and metadata["files_after"] < metadata["files_before"] == 13
    # bronze: retention set to 48 h, its 12 aged commits gone; silver: left alone, nothing removed
    assert metadata["bronze_log_retention_hours"] == 48
    assert metadata["log_files_removed"] == 12
    assert metadata["log_files_after"] == metadata["log_files_before"] + 2 - 12 == 3
    assert log_retention(bronze) == "interval 48 hours" and log_retention(silver) is None
    assert stored_offsets(bronze, TOPICS[CANDLES].table, CANDLES, [0]) == {0: 11}
    assert lake_maintenance_schedule.cron_schedule == "30 2 * * *"


@pytest.mark.parametrize(
    ("age_days", "removed"),
    [
        (60, 20),  # past the 30-day log retention: every commit before the new checkpoint goes
        (29, 0),  # still inside the retention: kept for time travel
        (0, 0),  # fresh
    ],
)
def test_expired_log_files_go_once_the_checkpoint_covers_them(
    lake_dir: Path, age_days: int, removed: int
) -> None:
    lake = Lake(str(lake_dir))
    _many_small_commits(lake, 20)  # fewer than delta-rs's 100: no automatic checkpoint yet
    location = lake.location(TOPICS[CANDLES].table)
    _age_log(location, age_days)
    report = maintain_table(location)
    assert report.log_files_removed == removed
    assert report.after.log_files == 20 + 1 - removed  # the compaction commit is new
    # the table still opens from the checkpoint, with every row and the stored offset
    assert read_table(location).height == 20
    assert stored_offsets(location, TOPICS[CANDLES].table, CANDLES, [0]) == {0: 19}
    table = open_table(location)
    assert table is not None and table.version() == 20
    land_batch(
        TOPICS[CANDLES],
        [_candle(20)],
        bronze=location,
        rejects=lake.location(REJECTS_TABLE),
        expected={0: 19},
    )
    assert read_table(location).height == 21


RETENTION = "delta.logRetentionDuration"


@pytest.mark.parametrize(
    ("retention_hours", "age_days", "removed", "property_value"),
    [
        (48, 3, 20, "interval 48 hours"),  # older than 48 h: every commit before the checkpoint
        (48, 1, 0, "interval 48 hours"),  # younger than 48 h: kept for time travel
        (0, 0, 21, "interval 0 hours"),  # 0 h: all but the checkpoint's commit, fresh or not
        (None, 3, 0, None),  # left alone: delta-rs's 30 days keep 3-day-old commits
    ],
)
def test_a_short_log_retention_drops_old_commits_and_keeps_the_data(
    lake_dir: Path,
    retention_hours: int | None,
    age_days: float,
    removed: int,
    property_value: str | None,
) -> None:
    lake = Lake(str(lake_dir))
    _many_small_commits(lake, 20)
    location = lake.location(TOPICS[CANDLES].table)
    _age_log(location, age_days)
    options = MaintenanceOptions(log_retention_hours=retention_hours)
    report = maintain_table(location, options)
    table = open_table(location)
    assert table is not None
    assert table.metadata().configuration.get(RETENTION) == property_value
    assert report.log_retention == property_value
    assert report.log_retention_changed is (retention_hours is not None)
    assert report.log_files_removed == removed
    setting_commits = 0 if retention_hours is None else 1
    # 20 batches + compaction (+ the property); the checkpoint's commit always stays
    assert report.after.version == 20 + setting_commits
    assert report.after.log_files == 20 + 1 + setting_commits - removed
    # the commits left run without a gap to the tip; the oldest of them is still readable
    kept = sorted(int(path.stem) for path in Path(location.uri, "_delta_log").glob("*.json"))
    assert kept == list(range(removed, report.after.version + 1))
    oldest = open_table(location, version=kept[0])
    assert oldest is not None and oldest.version() == kept[0]
    if removed:  # time travel before the retention is gone (delta-rs: no files in log segment)
        assert open_table(location, version=kept[0] - 1) is None
    # rows and the stored offset survive; ingest goes on exactly once
    assert read_table(location).height == 20
    assert stored_offsets(location, TOPICS[CANDLES].table, CANDLES, [0]) == {0: 19}
    spec = TOPICS[CANDLES]
    rejects = lake.location(REJECTS_TABLE)
    land_batch(spec, [_candle(20)], bronze=location, rejects=rejects, expected={0: 19})
    # a stale consumer that read offset 19 before that commit cannot land offset 20 again
    with pytest.raises(CommitConflictError):
        land_batch(spec, [_candle(20)], bronze=location, rejects=rejects, expected={0: 19})
    offsets = read_table(location, columns=["kafka_offset"]).get_column("kafka_offset")
    assert offsets.len() == offsets.n_unique() == 21
    assert stored_offsets(location, spec.table, CANDLES, [0]) == {0: 20}
    # a second run finds the property as wanted and writes no commit for it
    again = maintain_table(location, options)
    assert again.log_retention_changed is False
    assert again.log_retention == property_value


def test_maintain_lake_applies_layer_options_to_that_layer_only(lake_dir: Path) -> None:
    lake = Lake(str(lake_dir))
    _many_small_commits(lake, 3)
    _silver_table(lake)
    short = MaintenanceOptions(log_retention_hours=24)
    reports = maintain_lake(lake, layer_options={"bronze": short})
    assert [(r.uri.rsplit("/", 2)[-2], r.log_retention) for r in reports] == [
        ("bronze", "interval 24 hours"),
        ("silver", None),
    ]


@pytest.mark.parametrize(
    "options",
    [
        {"log_retention_hours": -1},  # a negative retention would be read as 30 days by delta-rs
        {"vacuum_retention_hours": -5},  # negative vacuum retention
        {"target_file_bytes": 0},  # no file size to aim for
    ],
)
def test_invalid_maintenance_options_are_config_errors(options: dict[str, int]) -> None:
    with pytest.raises(ConfigError, match=next(iter(options))):
        MaintenanceOptions(**options)
