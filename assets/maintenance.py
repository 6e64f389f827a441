"""Lake hygiene as a scheduled asset: compaction, checkpoints and vacuum of every table."""

# No `from __future__ import annotations` here: Dagster reads the context and config
# annotations at definition time and does not resolve string annotations.

import dagster as dg
from dagster import AssetExecutionContext

from warehouse.maintenance import MaintenanceOptions, maintain_lake

LAKE_MAINTENANCE_KEY = dg.AssetKey(["maintenance", "lake"])


class LakeMaintenanceConfig(dg.Config):
    """How hard to clean (see ``warehouse.maintenance.MaintenanceOptions``)."""

    vacuum_retention_hours: int = 168
    compact_min_files: int = 8


@dg.asset(
    key=LAKE_MAINTENANCE_KEY,
    group_name="maintenance",
    required_resource_keys={"lake"},
    kinds={"deltalake"},
)
def lake_maintenance(
    context: AssetExecutionContext, config: LakeMaintenanceConfig
) -> dg.MaterializeResult:
    """Compact small files, checkpoint and vacuum every Delta table of the lake."""
    options = MaintenanceOptions(
        vacuum_retention_hours=config.vacuum_retention_hours,
        compact_min_files=config.compact_min_files,
    )
    reports = maintain_lake(context.resources.lake.lake(), options)
    for report in reports:
        context.log.info(
            "%s: %d -> %d files, %d compacted, %d vacuumed",
            report.uri,
            report.before.files,
            report.after.files,
            report.files_compacted,
            report.files_vacuumed,
        )
    return dg.MaterializeResult(
        metadata={
            "tables": len(reports),
            "files_before": sum(r.before.files for r in reports),
            "files_after": sum(r.after.files for r in reports),
            "files_vacuumed": sum(r.files_vacuumed for r in reports),
            "per_table": dg.MetadataValue.json([r.to_dict() for r in reports]),
        }
    )


lake_maintenance_job = dg.define_asset_job(
    "lake_maintenance", selection=dg.AssetSelection.assets(LAKE_MAINTENANCE_KEY)
)

lake_maintenance_schedule = dg.ScheduleDefinition(
    name="nightly_lake_maintenance",
    job=lake_maintenance_job,
    cron_schedule="30 2 * * *",
    execution_timezone="UTC",
)
