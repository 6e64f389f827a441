"""Table hygiene: compaction of small files, checkpoints and vacuum, for any table of the lake.

Micro-batch ingestion writes one commit (and a few small files) per batch. Without care a table
that has taken 10,000 batches has 10,000 JSON commits to replay and thousands of tiny Parquet
files to open. :func:`maintain_table` fixes both: it rewrites small files into large ones
(``optimize.compact``, which keeps the app transactions, so stored Kafka offsets survive),
vacuums data files no version within the retention still references, optionally shortens the
table's ``delta.logRetentionDuration`` (default 30 days), writes a checkpoint (opening the table
then reads one Parquet file instead of every JSON commit) and, last, drops the log files older
than that retention that no retained version needs.

delta-rs (1.6.6) also checkpoints on its own: its post-commit hook writes one after every
``delta.checkpointInterval`` commits (default 100, at versions 99, 199, ...), and after every
commit (measured: not only the checkpointing ones) drops the expired log files that precede the
latest checkpoint at or before the first version inside the retention. So a table never replays
more than 100 JSON commits on open, but between two automatic checkpoints it replays up to 99,
and the small files stay until compaction.

Why the log retention matters for micro-batch tables: delta-rs lists ``_delta_log`` on every
commit, so a commit slows with the number of log files kept (13 ms on a fresh table, 45 ms with
3,000 JSON commits, 22.5 ms once the commits before the last checkpoint are gone). With the
default 30 days a table taking one commit every few seconds keeps hundreds of thousands of them.
``MaintenanceOptions.log_retention_hours`` shortens the retention; the price is time travel, which
only reaches versions whose commit is still in the log (within the retention).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import cast

from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from warehouse.errors import ConfigError, LakeError
from warehouse.lake import Lake, TableLocation, filesystem_for, fs_path, list_tables, open_table


@dataclass(frozen=True)
class MaintenanceOptions:
    """How hard to clean.

    Attributes:
        target_file_bytes: size compaction aims for (default 128 MiB).
        vacuum_retention_hours: keep files that versions of the last N hours need, for time
            travel and for readers still on an old version (default 168 = 7 days; 0 keeps only
            what the latest version needs).
        compact_min_files: compact only when at least this many files exist (default 8).
        log_retention_hours: set the table's ``delta.logRetentionDuration`` to this many hours
            before the checkpoint and the log cleanup, so commits older than that go now and
            delta-rs's automatic cleanup (after each automatic checkpoint) keeps the log short
            from then on. Costs time travel: only versions of the last N hours stay readable
            (0 keeps only the latest checkpoint and the commits after it). Default ``None``
            leaves the property alone (delta-rs's default is 30 days).

    Raises:
        ConfigError: a negative number of hours or files, or a target size below 1.
    """

    target_file_bytes: int = 128 * 1024 * 1024
    vacuum_retention_hours: int = 168
    compact_min_files: int = 8
    log_retention_hours: int | None = None

    def __post_init__(self) -> None:
        if self.target_file_bytes < 1:
            raise ConfigError(f"target_file_bytes must be positive, got {self.target_file_bytes}")
        negative = {
            name: value
            for name, value in (
                ("vacuum_retention_hours", self.vacuum_retention_hours),
                ("compact_min_files", self.compact_min_files),
                ("log_retention_hours", self.log_retention_hours),
            )
            if value is not None and value < 0
        }
        if negative:
            raise ConfigError(f"maintenance options cannot be negative: {negative}")


@dataclass(frozen=True)
class TableHealth:
    """How costly a table is to open and scan."""

    uri: str
    version: int
    files: int
    bytes: int
    commits_since_checkpoint: int
    log_files: int
    """JSON commit files in ``_delta_log``."""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class MaintenanceReport:
    """What :func:`maintain_table` did to one table."""

    uri: str
    before: TableHealth
    after: TableHealth
    files_compacted: int
    files_vacuumed: int
    log_files_removed: int
    """JSON commits deleted during the run, by :func:`cleanup_log` or by delta-rs's post-commit
    cleanup after this run's own commits."""
    seconds: float
    log_retention: str | None = None
    """The table's ``delta.logRetentionDuration`` after maintenance (``None``: not set, so
    delta-rs's 30 days)."""
    log_retention_changed: bool = False
    """Whether this run set ``delta.logRetentionDuration`` (one extra commit)."""

    def to_dict(self) -> dict[str, object]:
        """The report as plain JSON-ready values (seconds rounded to ms)."""
        return {
            "uri": self.uri,
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "files_compacted": self.files_compacted,
            "files_vacuumed": self.files_vacuumed,
            "log_files_removed": self.log_files_removed,
            "log_retention": self.log_retention,
            "log_retention_changed": self.log_retention_changed,
            "seconds": round(self.seconds, 3),
        }


def _table(location: TableLocation) -> DeltaTable:
    table = open_table(location)
    if table is None:
        raise LakeError(f"Delta table {location.uri} does not exist; nothing to maintain")
    return table


def table_health(location: TableLocation) -> TableHealth:
    """Files, bytes, commits since the last checkpoint and log files of a table."""
    table = _table(location)
    actions = table.get_add_actions(flatten=True)
    # arro3's stub types to_pylist() as an ndarray; it returns a list of Python ints
    sizes = cast(list[int], actions.column("size_bytes").to_pylist()) if actions.num_rows else []
    last = _last_checkpoint_version(location)
    since = table.version() + 1 if last is None else table.version() - last
    return TableHealth(
        location.uri, table.version(), len(sizes), int(sum(sizes)), since, _log_files(location)
    )


def _log_files(location: TableLocation) -> int:
    filesystem = filesystem_for(location.uri, location.storage_options)
    try:
        return len(filesystem.glob(f"{fs_path(location.uri)}/_delta_log/*.json"))
    except (OSError, ValueError) as exc:
        raise LakeError(f"cannot list the log of {location.uri}: {exc}") from exc


def _last_checkpoint_version(location: TableLocation) -> int | None:
    filesystem = filesystem_for(location.uri, location.storage_options)
    path = f"{fs_path(location.uri)}/_delta_log/_last_checkpoint"
    try:
        with filesystem.open(path, "rb") as handle:
            return int(json.loads(handle.read())["version"])
    except (OSError, ValueError, KeyError):
        return None


def checkpoint(location: TableLocation) -> int:
    """Write a checkpoint at the table's latest version; return that version."""
    table = _table(location)
    try:
        table.create_checkpoint()
    except DeltaError as exc:
        raise LakeError(f"cannot checkpoint {location.uri}: {exc}") from exc
    return table.version()


def compact(location: TableLocation, *, target_file_bytes: int | None = None) -> int:
    """Rewrite small files into ones of about ``target_file_bytes``; return files removed.

    ``None`` uses delta-rs's default target (100 MiB).
    """
    table = _table(location)
    try:
        metrics = table.optimize.compact(target_size=target_file_bytes)
    except DeltaError as exc:
        raise LakeError(f"cannot compact {location.uri}: {exc}") from exc
    return int(metrics.get("numFilesRemoved", 0))


def vacuum(location: TableLocation, *, retention_hours: int = 168) -> int:
    """Delete data files no version of the last ``retention_hours`` needs; return how many."""
    table = _table(location)
    try:
        removed = table.vacuum(
            retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False
        )
    except DeltaError as exc:
        raise LakeError(f"cannot vacuum {location.uri}: {exc}") from exc
    return len(removed)


LOG_RETENTION_PROPERTY = "delta.logRetentionDuration"


def log_retention(location: TableLocation) -> str | None:
    """The table's ``delta.logRetentionDuration`` (``None`` when not set: 30 days)."""
    return _table(location).metadata().configuration.get(LOG_RETENTION_PROPERTY)


def set_log_retention(location: TableLocation, hours: int) -> bool:
    """Set ``delta.logRetentionDuration`` to ``interval <hours> hours``; return whether it changed.

    Writes a commit only when the table's value differs. The value format is the one delta-rs
    (delta-kernel's ``parse_interval``) reads; delta-rs accepts any string here and silently falls
    back to 30 days on one it cannot parse, so the hours are checked instead. Time travel then
    reaches only versions whose commit is younger than ``hours`` (once a checkpoint covers them
    and a cleanup ran).

    Raises:
        ConfigError: ``hours`` is negative.
        LakeError: the table does not exist or the commit failed.
    """
    if hours < 0:
        raise ConfigError(f"log retention must be at least 0 hours, got {hours}")
    value = f"interval {hours} hours"
    table = _table(location)
    if table.metadata().configuration.get(LOG_RETENTION_PROPERTY) == value:
        return False
    try:
        table.alter.set_table_properties({LOG_RETENTION_PROPERTY: value})
    except DeltaError as exc:
        raise LakeError(f"cannot set {LOG_RETENTION_PROPERTY} on {location.uri}: {exc}") from exc
    return True


def cleanup_log(location: TableLocation) -> int:
    """Delete expired log files; return how many JSON commits went.

    delta-rs (1.6) deletes the commits and checkpoints older than the table's
    ``delta.logRetentionDuration`` (default 30 days) that precede the latest checkpoint at or
    before the first version still inside the retention, so every retained version stays
    readable; time travel to the deleted versions is no longer possible. Run it after
    :func:`checkpoint`, or the commits since the previous checkpoint stay another round.
    """
    table = _table(location)
    before = _log_files(location)
    try:
        table.cleanup_metadata()
    except DeltaError as exc:
        raise LakeError(f"cannot clean the log of {location.uri}: {exc}") from exc
    return before - _log_files(location)


def maintain_table(
    location: TableLocation, options: MaintenanceOptions = MaintenanceOptions()
) -> MaintenanceReport:
    """Set the log retention (when asked), compact (when worth it), vacuum, checkpoint, then drop
    expired log files of one table.

    Log files go only up to a checkpoint at or before the first version still inside the log
    retention (delta-rs keeps every retained version readable). On a table taking commits, that is
    the last automatic checkpoint (every 100 commits) before the retention boundary, so up to 99
    expired commits stay; when ``log_retention_hours`` is set, a checkpoint written before this
    run's own commits lets all of an idle table's expired commits go.

    Args:
        location: the table.
        options: how hard to clean (default :class:`MaintenanceOptions`: 128 MiB files, 7-day
            vacuum retention, log retention left alone).

    Raises:
        LakeError: the table does not exist or a step failed.
    """
    started = time.monotonic()
    before = table_health(location)
    changed = False
    if options.log_retention_hours is not None:
        changed = set_log_retention(location, options.log_retention_hours)
        # delta-rs drops log files only up to a checkpoint at or before the first version still
        # inside the retention (so that version stays readable); one here, before this run's own
        # commits, lets an idle table's expired history go now, not after 100 more commits
        checkpoint(location)
    compacted = 0
    if before.files >= options.compact_min_files:
        compacted = compact(location, target_file_bytes=options.target_file_bytes)
    vacuumed = vacuum(location, retention_hours=options.vacuum_retention_hours)
    checkpoint(location)  # after vacuum, which commits too
    cleanup_log(location)  # after the checkpoint, which makes older logs expendable
    after = table_health(location)
    # delta-rs's post-commit hook also drops expired log files after this run's own commits, so
    # count every JSON commit that went, not only what cleanup_log found left to delete
    log_removed = before.log_files + (after.version - before.version) - after.log_files
    return MaintenanceReport(
        location.uri,
        before,
        after,
        compacted,
        vacuumed,
        log_removed,
        time.monotonic() - started,
        log_retention=log_retention(location),
        log_retention_changed=changed,
    )


def maintain_lake(
    lake: Lake,
    options: MaintenanceOptions = MaintenanceOptions(),
    *,
    layer_options: Mapping[str, MaintenanceOptions] | None = None,
) -> list[MaintenanceReport]:
    """:func:`maintain_table` for every Delta table of the lake.

    Args:
        lake: the lake.
        options: options for every table (default :class:`MaintenanceOptions`).
        layer_options: options by layer (``"bronze"``, ``"silver"``, ``"gold"``) that replace
            ``options`` for the tables of that layer (default none), e.g. a short log retention
            for the micro-batch bronze tables only.
    """
    by_layer = dict(layer_options or {})
    return [
        maintain_table(lake.location(name), by_layer.get(name.split("/", 1)[0], options))
        for name in list_tables(lake)
    ]
