"""Table hygiene: a table of many small commits is compacted, checkpointed and still exact."""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg
import pytest

from warehouse.bronze import REJECTS_TABLE, RawRecord, land_batch, stored_offsets
from warehouse.lake import Lake, list_tables, open_table, read_table
from warehouse.maintenance import MaintenanceOptions, maintain_table, table_health
from warehouse.topics import CANDLES, TOPICS

HOUR_MS = 3_600_000
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


def test_the_scheduled_maintenance_asset_cleans_every_table(lake_dir: Path) -> None:
    from assets.maintenance import lake_maintenance, lake_maintenance_schedule
    from pipelines.resources import LakeResource

    lake = Lake(str(lake_dir))
    _many_small_commits(lake, 12)
    assert list_tables(lake) == ["bronze/candles"]
    result = dg.materialize([lake_maintenance], resources={"lake": LakeResource(uri=str(lake_dir))})
    assert result.success
    [event] = result.get_asset_materialization_events()
    metadata = {k: v.value for k, v in event.materialization.metadata.items()}
    assert metadata["tables"] == 1 and metadata["files_after"] < metadata["files_before"] == 12
    assert lake_maintenance_schedule.cron_schedule == "30 2 * * *"


DAY_S = 86_400


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
    aged = time.time() - age_days * DAY_S
    for path in Path(location.uri, "_delta_log").glob("*.json"):
        os.utime(path, (aged, aged))
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
