"""Table hygiene: how fast a bronze table of many micro-batch commits opens, before and after
``maintain_table``, against the same table with no checkpoints at all.

One run, one fresh lake in a temporary folder:

1. land ``--commits`` micro-batches (default 10,000) of ``--records`` candle records each
   (default 3: three symbols, one hour per batch) into ``bronze/candles`` through the real
   ``warehouse.bronze.land_batch``, so every commit carries its Kafka offset as a Delta app
   transaction and delta-rs's post-commit hook writes its automatic checkpoints as in production;
2. copy the table and delete the copy's checkpoints (``*.checkpoint.parquet`` and
   ``_last_checkpoint``): opening it replays every JSON commit, as a table would without
   checkpoints (the baseline that shows why they matter);
3. measure both: open (``DeltaTable(uri)``), stored offsets (``warehouse.bronze.stored_offsets``)
   and read all rows (``warehouse.lake.read_table``), each the median of ``--repeat`` runs,
   plus files, log files and commits since the last checkpoint;
4. run ``warehouse.maintenance.maintain_table`` (production options but the log retention:
   ``--vacuum-retention-hours``, ``--log-retention-hours``) and measure again; check every offset
   is there exactly once and the stored offset survived;
5. land 200 more batches on the maintained table: the landing rate of the first 200 commits, the
   last 200 before maintenance and these 200 shows what the small files and the kept log files
   cost ingestion itself (each commit lists ``_delta_log`` and opens the table, and the snapshot
   holds every file).

``--log-retention-hours`` defaults to 0 here, not to the nightly asset's 48 hours for bronze: every
commit of one run is minutes old, so 48 hours would keep them all and the run could not show
what a short log does. With 0, ``maintain_table`` sets ``delta.logRetentionDuration`` to
``interval 0 hours``, every JSON commit before its checkpoint goes, and while the next 200
batches land delta-rs's post-commit cleanup drops every commit before its latest automatic
checkpoint (so at most 100 stay): the state a 48-hour retention keeps a table in, minus the last
two days of commits.
``-1`` leaves the property alone (delta-rs's 30 days: nothing of this run expires).

Prints a table with the three states and the ratios; ``--json`` prints one object.

    python benchmarks/table_hygiene.py                    # 10,000 commits, log retention 0 h
    python benchmarks/table_hygiene.py --commits 500 --json
    python benchmarks/table_hygiene.py --commits 500 --log-retention-hours -1   # keep the log
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_env  # noqa: F401  (first: import path and tool homes)
from deltalake import DeltaTable
from tqdm import tqdm

from warehouse.bronze import REJECTS_TABLE, RawRecord, land_batch, stored_offsets
from warehouse.lake import Lake, TableLocation, read_table
from warehouse.maintenance import MaintenanceOptions, maintain_table, table_health
from warehouse.topics import CANDLES, TOPICS

HOUR_MS = 3_600_000
START_MS = 1_700_000_000_000 // HOUR_MS * HOUR_MS
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT")
DELTA_RS_DEFAULT_CHECKPOINT_INTERVAL = 100
"""delta-rs's ``delta.checkpointInterval`` when the table does not set it."""

STATES = ("no_checkpoint", "before", "after")
WINDOW = 200
"""Commits whose landing rate is compared: the last ones before maintenance, the first after
(two checkpoint intervals, so both windows see the same saw-tooth of log replay)."""


def _batch(commit: int, records: int) -> list[RawRecord]:
    """The records of one micro-batch: one candle per symbol for hour ``commit``."""
    open_time = START_MS + commit * HOUR_MS
    batch = []
    for index in range(records):
        symbol = SYMBOLS[index % len(SYMBOLS)] if index < len(SYMBOLS) else f"SYM{index}USDT"
        value = (
            f'{{"symbol":"{symbol}","interval":"1h","open_time":{open_time},'
            f'"open":1,"high":2,"low":0.5,"close":1.5,"volume":3,"source":"bench"}}'
        ).encode()
        offset = commit * records + index
        batch.append(RawRecord(CANDLES, 0, offset, open_time, symbol.encode(), value))
    return batch


def land(lake: Lake, commits: int, records: int, *, first: int = 0, progress: bool) -> list[float]:
    """Land batches ``first`` .. ``first + commits - 1`` through ``land_batch``.

    Returns the seconds each commit took.
    """
    spec = TOPICS[CANDLES]
    bronze, rejects = lake.location(spec.table), lake.location(REJECTS_TABLE)
    last: int | None = first * records - 1 if first else None
    seconds = []
    bar = tqdm(
        total=commits,
        unit="commit",
        desc="land",
        disable=not progress,
        file=sys.stderr,
        mininterval=2.0,
    )
    with bar:
        for commit in range(first, first + commits):
            batch = _batch(commit, records)
            started = time.perf_counter()
            land_batch(spec, batch, bronze=bronze, rejects=rejects, expected={0: last})
            seconds.append(time.perf_counter() - started)
            last = batch[-1].offset
            bar.update()
    return seconds


def _rate(seconds: list[float]) -> float:
    return round(len(seconds) / sum(seconds), 1) if seconds else 0.0


def without_checkpoints(source: Path, target: Path) -> Path:
    """A copy of the table at ``source`` with every checkpoint removed; returns ``target``."""
    shutil.copytree(source, target)
    log = target / "_delta_log"
    for path in [*log.glob("*.checkpoint*.parquet"), log / "_last_checkpoint"]:
        path.unlink(missing_ok=True)
    return target


def _median_ms(action: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return round(statistics.median(samples) * 1000, 1)


def measure(location: TableLocation, repeat: int) -> dict[str, float | int]:
    """Open, offsets and full-read times (ms, medians) and the log and file counts of a table."""
    spec = TOPICS[CANDLES]
    log = Path(location.uri) / "_delta_log"
    health = table_health(location)
    return {
        "open_ms": _median_ms(lambda: DeltaTable(location.uri), repeat),
        "offsets_ms": _median_ms(
            lambda: stored_offsets(location, spec.table, spec.topic, [0]), repeat
        ),
        "read_ms": _median_ms(lambda: read_table(location), repeat),
        "version": health.version,
        "files": health.files,
        "files_on_disk": sum(
            1 for p in Path(location.uri).rglob("*.parquet") if "_delta_log" not in p.parts
        ),
        "log_json_files": health.log_files,
        "checkpoints": sum(1 for _ in log.glob("*.checkpoint*.parquet")),
        "commits_since_checkpoint": health.commits_since_checkpoint,
    }


def verify(location: TableLocation, total: int) -> None:
    """Every offset 0..total-1 exactly once and the stored offset at total-1, else exit."""
    spec = TOPICS[CANDLES]
    offsets = read_table(location, columns=["kafka_offset"]).get_column("kafka_offset")
    stored = stored_offsets(location, spec.table, spec.topic, [0])
    if (
        offsets.len() != total
        or offsets.n_unique() != total
        or (total and (offsets.min(), offsets.max()) != (0, total - 1))
        or stored != {0: total - 1}
    ):
        raise SystemExit(
            f"exactly-once check failed at {location.uri}: {offsets.len()} rows, "
            f"{offsets.n_unique()} distinct offsets, stored {stored}; expected {total}"
        )


def checkpoint_interval(location: TableLocation) -> tuple[int, bool]:
    """The table's checkpoint interval and whether it is delta-rs's default (not set)."""
    configured = DeltaTable(location.uri).metadata().configuration.get("delta.checkpointInterval")
    if configured is None:
        return DELTA_RS_DEFAULT_CHECKPOINT_INTERVAL, True
    return int(configured), False


def _ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 1) if denominator else float("inf")


def run(
    commits: int,
    *,
    records: int = 3,
    repeat: int = 5,
    vacuum_retention_hours: int = 168,
    log_retention_hours: int | None = 0,
    progress: bool = True,
) -> dict[str, object]:
    """The whole benchmark on a fresh lake; returns the figures.

    ``log_retention_hours=None`` leaves ``delta.logRetentionDuration`` alone (30 days).
    """
    with tempfile.TemporaryDirectory(prefix="marketlake-bench-hygiene-") as folder:
        lake = Lake(str(Path(folder) / "lake"))
        location = lake.location(TOPICS[CANDLES].table)
        landed = land(lake, commits, records, progress=progress)
        verify(location, commits * records)
        log = Path(location.uri) / "_delta_log"
        automatic = sorted(int(p.name.split(".")[0]) for p in log.glob("*.checkpoint*.parquet"))
        interval, default = checkpoint_interval(location)
        bare = TableLocation(
            str(without_checkpoints(Path(location.uri), Path(folder) / "no_checkpoint"))
        )
        states = {"no_checkpoint": measure(bare, repeat), "before": measure(location, repeat)}
        verify(bare, commits * records)
        options = MaintenanceOptions(
            vacuum_retention_hours=vacuum_retention_hours, log_retention_hours=log_retention_hours
        )
        report = maintain_table(location, options)
        states["after"] = measure(location, repeat)
        verify(location, commits * records)
        window = min(WINDOW, commits)
        landed_after = land(lake, window, records, first=commits, progress=progress)
        verify(location, (commits + window) * records)
        log_files_after_landing = table_health(location).log_files
    ratios = {
        f"{name}_{a}_over_{b}": _ratio(float(states[a][name]), float(states[b][name]))
        for name in ("open_ms", "offsets_ms", "read_ms")
        for a, b in (("no_checkpoint", "after"), ("before", "after"), ("no_checkpoint", "before"))
    }
    return {
        "commits": commits,
        "records_per_commit": records,
        "repeat": repeat,
        "land_s": round(sum(landed), 1),
        "land_commits_per_s": _rate(landed),
        "land_window": window,
        "land_first_window_commits_per_s": _rate(landed[:window]),
        "land_last_window_commits_per_s": _rate(landed[-window:]),
        "land_after_maintenance_commits_per_s": _rate(landed_after),
        "land_after_over_last_window": _ratio(_rate(landed_after), _rate(landed[-window:])),
        "log_files_after_landing": log_files_after_landing,
        "checkpoint_interval": interval,
        "checkpoint_interval_is_delta_rs_default": default,
        "automatic_checkpoints": len(automatic),
        "automatic_checkpoint_versions_first": automatic[:3],
        "maintain_s": round(report.seconds, 1),
        "files_compacted": report.files_compacted,
        "files_vacuumed": report.files_vacuumed,
        "log_files_removed": report.log_files_removed,
        "vacuum_retention_hours": vacuum_retention_hours,
        "log_retention_hours": log_retention_hours,
        "log_retention": report.log_retention,
        **{state: states[state] for state in STATES},
        "ratios": ratios,
        "exactly_once": True,
    }


ROWS = (
    ("open_ms", "open table (ms, median)"),
    ("offsets_ms", "read stored offsets (ms)"),
    ("read_ms", "read all rows (ms)"),
    ("version", "table version"),
    ("files", "data files in table"),
    ("files_on_disk", "data files on disk"),
    ("log_json_files", "JSON commits in _delta_log"),
    ("checkpoints", "checkpoint files"),
    ("commits_since_checkpoint", "commits since checkpoint"),
)


def render(figures: dict[str, Any]) -> str:
    """The figures as a plain-text report (the table of the three states, then the ratios)."""
    f = figures
    states = {state: f[state] for state in STATES}
    default = (
        " (delta-rs default, not set on the table)"
        if f["checkpoint_interval_is_delta_rs_default"]
        else ""
    )
    lines = [
        f"landed {f['commits']:,} commits x {f['records_per_commit']} records in {f['land_s']} s"
        f" = {f['land_commits_per_s']} commits/s",
        f"landing rate per {f['land_window']} commits:"
        f" first {f['land_first_window_commits_per_s']},"
        f" last {f['land_last_window_commits_per_s']},"
        f" after maintenance {f['land_after_maintenance_commits_per_s']} commits/s"
        f" ({f['land_after_over_last_window']}x the last {f['land_window']} before)",
        f"delta.checkpointInterval = {f['checkpoint_interval']}{default};"
        f" automatic checkpoints written: {f['automatic_checkpoints']}"
        f" (first at versions {f['automatic_checkpoint_versions_first']})",
        f"maintain_table: {f['maintain_s']} s, {f['files_compacted']} files compacted,"
        f" {f['files_vacuumed']} vacuumed (retention {f['vacuum_retention_hours']} h),"
        f" {f['log_files_removed']} expired log files removed"
        f" (delta.logRetentionDuration: {f['log_retention'] or 'not set, 30 days'});"
        f" {f['log_files_after_landing']} JSON commits in _delta_log after"
        f" {f['land_window']} more batches",
        "",
        f"{'':28}{'no checkpoint':>15}{'before':>10}{'after':>10}{'no-ckpt/after':>15}"
        f"{'before/after':>14}",
    ]
    for key, label in ROWS:
        values = [states[state][key] for state in STATES]
        widths = (15, 10, 10)
        line = f"{label:28}" + "".join(f"{v:>{w}}" for v, w in zip(values, widths, strict=True))
        if key.endswith("_ms"):
            ratios = figures["ratios"]
            line += f"{ratios[f'{key}_no_checkpoint_over_after']:>14}x"
            line += f"{ratios[f'{key}_before_over_after']:>13}x"
        lines.append(line)
    lines.append(
        "every offset present exactly once and the stored offset intact in all states, "
        "and after landing on the maintained table"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; ``--json`` prints one object, otherwise a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=10_000, help="micro-batches (10,000)")
    parser.add_argument("--records", type=int, default=3, help="candle records per batch (3)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs, median kept (5)")
    parser.add_argument(
        "--vacuum-retention-hours", type=int, default=168, help="maintain_table vacuum (168)"
    )
    parser.add_argument(
        "--log-retention-hours",
        type=int,
        default=0,
        help="maintain_table log retention (0 here, so this run's commits expire; -1 leaves"
        " delta.logRetentionDuration alone: 30 days)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.commits < 1 or args.records < 1 or args.repeat < 1:
        parser.error("--commits, --records and --repeat must be at least 1")
    figures = run(
        args.commits,
        records=args.records,
        repeat=args.repeat,
        vacuum_retention_hours=args.vacuum_retention_hours,
        log_retention_hours=None if args.log_retention_hours < 0 else args.log_retention_hours,
        progress=not args.json,
    )
    print(json.dumps(figures) if args.json else render(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
