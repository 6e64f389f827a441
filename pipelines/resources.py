"""Dagster resources: Kafka, the lake and MLflow, configured from the environment in one place."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from pipelines.broker import resolve_bootstrap
from pipelines.ingest import IngestOptions, IngestReport, land_topic
from warehouse.bronze import stored_offsets
from warehouse.catalog import BRONZE_REJECTS
from warehouse.lake import Lake
from warehouse.settings import Settings, load_settings
from warehouse.topics import TopicSpec


class KafkaResource(dg.ConfigurableResource):
    """The Kafka cluster: ``MARKETLAKE_KAFKA_BOOTSTRAP`` or the embedded broker of the home."""

    bootstrap: str | None = None
    home: str | None = None

    def bootstrap_address(self) -> str:
        if self.bootstrap:
            return self.bootstrap
        settings = load_settings()
        if self.home:
            settings = _with_home(settings, Path(self.home))
        return resolve_bootstrap(settings)

    def land(self, spec: TopicSpec, lake: Lake, *, max_records: int | None = None) -> IngestReport:
        """Land ``spec.topic`` into its bronze table, exactly once, until caught up."""
        return land_topic(
            self.bootstrap_address(),
            spec,
            bronze=lake.location(spec.table),
            rejects=lake.location(BRONZE_REJECTS),
            options=IngestOptions(max_records=max_records),
        )

    def lag(self, spec: TopicSpec, lake: Lake) -> dict[int, tuple[int, int]]:
        """Per partition: (next offset to land, broker end offset). End offsets are a lower
        bound on the embedded broker, so a positive difference is new data for sure."""
        from kafka import TopicPartition

        from pipelines.kafka_io import make_consumer

        consumer = make_consumer(self.bootstrap_address())
        try:
            partitions = sorted(consumer.partitions_for_topic(spec.topic) or [])
            ends = consumer.end_offsets([TopicPartition(spec.topic, p) for p in partitions])
        finally:
            consumer.close()
        stored = stored_offsets(lake.location(spec.table), spec.table, spec.topic, partitions)
        return {
            p: (
                (stored[p] if stored[p] is not None else -1) + 1,
                ends[TopicPartition(spec.topic, p)],
            )
            for p in partitions
        }


class LakeResource(dg.ConfigurableResource):
    """The Delta lake: ``MARKETLAKE_LAKE_URI`` (local path or s3://) and its storage options."""

    uri: str | None = None

    def lake(self) -> Lake:
        settings = load_settings()
        return Lake(self.uri or settings.lake_uri, settings.storage_options)


class MlflowResource(dg.ConfigurableResource):
    """The MLflow tracking server and registry (sqlite under the home by default)."""

    tracking_uri: str | None = None

    def uri(self) -> str:
        return self.tracking_uri or load_settings().mlflow_tracking_uri

    def artifacts(self) -> Path:
        return load_settings().mlflow_artifacts


def _with_home(settings: Settings, home: Path) -> Settings:
    from dataclasses import replace

    return replace(settings, home=home)


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """The resources every definition uses, resolved from the environment at run time."""
    return {"kafka": KafkaResource(), "lake": LakeResource(), "mlflow": MlflowResource()}
