"""Lake hygiene as a scheduled asset: compaction, checkpoints, vacuum and log retention of every
table, nightly (:func:`nightly_lake_maintenance`, added by ``pipelines/definitions.py``)."""

# No `from __future__ import annotations` here: Dagster reads the context and config
# annotations at definition time and does not resolve string annotations.

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Optional

import dagster as dg
from dagster import AssetExecutionContext

from warehouse.maintenance import MaintenanceOptions, maintain_lake

LAKE_MAINTENANCE_KEY = dg.AssetKey(["maintenance", "lake"])


class LakeMaintenanceConfig(dg.Config):
    """How hard to clean (see ``warehouse.maintenance.MaintenanceOptions``).

    ``bronze_log_retention_hours`` (default 48) sets ``delta.logRetentionDuration`` on the bronze
    tables only: they take one commit per ingest batch, and delta-rs lists every kept log file on
    each commit, so 30 days of commits slow ingestion down. Time travel on bronze then reaches
    back only that many hours. ``None`` leaves the property alone. Silver and gold keep the
    default 30 days: they take few commits and analysts time-travel them.
    """

    vacuum_retention_hours: int = 168
    compact_min_files: int = 8
    bronze_log_retention_hours: Optional[int] = 48  # noqa: UP045 (Dagster config annotation)
    run_retention_days: Optional[int] = 7  # noqa: UP045 (Dagster config annotation)
    """Finished Dagster runs older than this many days are deleted from the instance (the live
    system makes one every few seconds under a fast source); ``None`` keeps every run."""


FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def purge_finished_runs(
    instance: dg.DagsterInstance, older_than: timedelta, *, batch: int = 500
) -> int:
    """Delete the finished runs last updated more than ``older_than`` ago; returns how many."""
    cutoff = datetime.now(UTC) - older_than
    deleted = 0
    while True:
        records = instance.get_run_records(
            filters=dg.RunsFilter(statuses=FINISHED, updated_before=cutoff), limit=batch
        )
        for record in records:
            instance.delete_run(record.dagster_run.run_id)
        deleted += len(records)
        if len(records) < batch:
            return deleted


@dg.asset(
    key=LAKE_MAINTENANCE_KEY,
    group_name="maintenance",
    required_resource_keys={"lake"},
    kinds={"deltalake"},
)
def lake_maintenance(
    context: AssetExecutionContext, config: LakeMaintenanceConfig
) -> dg.MaterializeResult:
    """Compact small files, vacuum, checkpoint and trim the log of every Delta table of the lake."""
    options = MaintenanceOptions(
        vacuum_retention_hours=config.vacuum_retention_hours,
        compact_min_files=config.compact_min_files,
    )
    bronze = replace(options, log_retention_hours=config.bronze_log_retention_hours)
    reports = maintain_lake(
        context.resources.lake.lake(), options, layer_options={"bronze": bronze}
    )
    runs_deleted = 0
    if config.run_retention_days is not None:
        runs_deleted = purge_finished_runs(
            context.instance, timedelta(days=config.run_retention_days)
        )
    for report in reports:
        context.log.info(
            "%s: %d -> %d files, %d compacted, %d vacuumed, %d log files removed"
            " (log retention %s)",
            report.uri,
            report.before.files,
            report.after.files,
            report.files_compacted,
            report.files_vacuumed,
            report.log_files_removed,
            report.log_retention or "default 30 days",
        )
    return dg.MaterializeResult(
        metadata={
            "tables": len(reports),
            "files_before": sum(r.before.files for r in reports),
            "files_after": sum(r.after.files for r in reports),
            "files_vacuumed": sum(r.files_vacuumed for r in reports),
            "log_files_before": sum(r.before.log_files for r in reports),
            "log_files_after": sum(r.after.log_files for r in reports),
            "log_files_removed": sum(r.log_files_removed for r in reports),
            "bronze_log_retention_hours": config.bronze_log_retention_hours,
            "dagster_runs_deleted": runs_deleted,
            "per_table": dg.MetadataValue.json([r.to_dict() for r in reports]),
        }
    )


lake_maintenance_job = dg.define_asset_job(
    "lake_maintenance", selection=dg.AssetSelection.assets(LAKE_MAINTENANCE_KEY)
)

LAKE_MAINTENANCE_CRON = "30 2 * * *"
"""02:30 UTC every night."""


def nightly_lake_maintenance(
    *, default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.RUNNING
) -> dg.ScheduleDefinition:
    """The nightly schedule of ``maintenance/lake``, running unless ``default_status`` says not
    (``pipelines/definitions.py`` passes ``STOPPED`` under ``MARKETLAKE_START_PAUSED=1``)."""
    return dg.ScheduleDefinition(
        name="nightly_lake_maintenance",
        job=lake_maintenance_job,
        cron_schedule=LAKE_MAINTENANCE_CRON,
        execution_timezone="UTC",
        default_status=default_status,
    )


lake_maintenance_schedule = nightly_lake_maintenance()
"""The schedule as it starts by default (running); the definitions build their own copy."""
