"""Dagster resources: Kafka, the lake and MLflow, configured from the environment in one place."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from pipelines.broker import BrokerEndpoint, broker_status, resolve_broker
from pipelines.ingest import IngestOptions, IngestReport, land_topic
from warehouse.catalog import BRONZE_REJECTS
from warehouse.errors import BrokerError
from warehouse.lake import Lake
from warehouse.settings import Settings, load_settings
from warehouse.topics import TopicSpec


class KafkaResource(dg.ConfigurableResource):
    """The Kafka cluster: ``MARKETLAKE_KAFKA_BOOTSTRAP`` or the embedded broker of the home.

    An explicit ``bootstrap`` is an external cluster (no log id) unless it is the address of
    the home's running embedded broker, whose log id then applies.
    """

    bootstrap: str | None = None
    home: str | None = None

    def endpoint(self) -> BrokerEndpoint:
        """The broker and, for the embedded one, its log id."""
        settings = load_settings()
        if self.home:
            settings = _with_home(settings, Path(self.home))
        if not self.bootstrap:
            return resolve_broker(settings)
        embedded = broker_status(settings.broker_dir)
        if embedded is not None and embedded.bootstrap == self.bootstrap:
            return BrokerEndpoint(self.bootstrap, embedded.log_id)
        return BrokerEndpoint(self.bootstrap, None)

    def bootstrap_address(self) -> str:
        return self.endpoint().bootstrap

    def land(self, spec: TopicSpec, lake: Lake, *, max_records: int | None = None) -> IngestReport:
        """Land ``spec.topic`` into its bronze table, exactly once, until caught up."""
        endpoint = self.endpoint()
        return land_topic(
            endpoint.bootstrap,
            spec,
            bronze=lake.location(spec.table),
            rejects=lake.location(BRONZE_REJECTS),
            options=IngestOptions(max_records=max_records),
            log_id=endpoint.log_id,
        )

    def lag(
        self, spec: TopicSpec, lake: Lake, *, endpoint: BrokerEndpoint | None = None
    ) -> dict[int, tuple[int, int]]:
        """Per partition: (next offset to land, broker end offset).

        The next offset is where landing starts (:func:`pipelines.offsets.landing_start`: the
        new log's beginning after an embedded broker restart). End offsets are a lower bound on
        the embedded broker, so a positive difference is new data for sure.

        Args:
            spec: the topic and its table.
            lake: the lake.
            endpoint: the broker (default ``None``: :meth:`endpoint`).

        Raises:
            OffsetsLostError: (external cluster) the log no longer holds the stored offsets.
        """
        from kafka import TopicPartition
        from kafka.errors import KafkaError

        from pipelines.kafka_io import make_consumer
        from pipelines.offsets import landing_start

        endpoint = endpoint or self.endpoint()
        consumer = make_consumer(endpoint.bootstrap)
        try:
            partitions = sorted(consumer.partitions_for_topic(spec.topic) or [])
            start = landing_start(
                consumer, lake.location(spec.table), spec, partitions, log_id=endpoint.log_id
            )
            ends = consumer.end_offsets([TopicPartition(spec.topic, p) for p in partitions])
        except KafkaError as exc:
            raise BrokerError(f"cannot read the offsets of {spec.topic}: {exc}") from exc
        finally:
            consumer.close()
        return {p: (start.next_offsets[p], ends[TopicPartition(spec.topic, p)]) for p in partitions}


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
