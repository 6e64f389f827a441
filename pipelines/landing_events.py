"""What the live lander landed, told to Dagster: one runless materialization per bronze batch.

The lander of ``marketlake up`` lands bronze outside Dagster (``ingest --follow``). Recording each
committed batch as a materialization of the topic's bronze asset lets the automation that
follows bronze (silver, gold, predictions) see the new data at its next evaluation, and the UI
show what landed, from where, in which table version.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from assets.bronze import bronze_key
from warehouse.bronze import LandedBatch
from warehouse.topics import TopicSpec

LANDED_BY = "marketlake live lander"


def landed_metadata(spec: TopicSpec, landed: LandedBatch) -> dict[str, Any]:
    """The metadata of one landed batch: rows, rejects, offsets per partition, table version."""
    offsets = {str(p): {"first": lo, "last": hi} for p, (lo, hi) in sorted(landed.offsets.items())}
    return {
        "topic": spec.topic,
        "rows": landed.rows,
        "rejects": landed.rejects,
        "bytes": landed.bytes,
        "extra_fields": landed.extra_fields,
        "table_version": landed.table_version,
        "offsets": dg.MetadataValue.json(offsets),
        "last_kafka_timestamp_ms": (
            -1 if landed.max_kafka_timestamp_ms is None else landed.max_kafka_timestamp_ms
        ),
        "landed_by": LANDED_BY,
    }


def report_landed(instance: dg.DagsterInstance, spec: TopicSpec, landed: LandedBatch) -> None:
    """Record ``landed`` as a runless materialization of the bronze asset of ``spec``.

    Args:
        instance: the Dagster instance the daemon evaluates automation against.
        spec: the topic the batch came from.
        landed: what the committed batch wrote (:func:`warehouse.bronze.land_batch`).
    """
    ranges = ", ".join(f"{p}@{lo}..{hi}" for p, (lo, hi) in sorted(landed.offsets.items()))
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=bronze_key(spec),
            description=(
                f"{spec.topic} offsets {ranges or 'none'} landed into {spec.table} "
                f"v{landed.table_version} by the {LANDED_BY}"
            ),
            metadata=landed_metadata(spec, landed),
        )
    )
