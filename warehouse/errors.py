"""The one exception hierarchy of marketlake.

Every package raises a subclass of :class:`MarketlakeError`; messages say what happened and
what to do about it, built from the data involved.

    MarketlakeError
    ├── ConfigError          a setting is missing or invalid
    ├── SchemaError          a record or table does not match its schema
    ├── LakeError            a Delta table cannot be read or written
    │   └── CommitConflictError   another writer committed first
    ├── IngestError          landing Kafka records failed (pipelines)
    │   └── OffsetsLostError      the Kafka log no longer holds the stored offsets
    ├── BrokerError          the Kafka broker cannot be started or reached (pipelines)
    ├── SourceError          a remote API or a source file failed (pipelines)
    ├── ModelError           training or loading a model failed (training)
    │   └── ModelNotFoundError    no registered model matches the request
    └── DataError            not enough or unusable data for the step asked
"""

from __future__ import annotations


class MarketlakeError(Exception):
    """Base class of every error marketlake raises on purpose."""


class ConfigError(MarketlakeError):
    """A setting is missing or invalid."""


class SchemaError(MarketlakeError):
    """A record or a table does not match the schema it must have."""


class LakeError(MarketlakeError):
    """A Delta table cannot be read or written."""


class CommitConflictError(LakeError):
    """Another writer committed to the table first; nothing of this batch was written."""


class IngestError(MarketlakeError):
    """Landing Kafka records into the lake failed."""


class OffsetsLostError(IngestError):
    """The Kafka log no longer holds the offsets a bronze table stores.

    Retention deleted records that were never landed, or the topic was recreated. Nothing is
    landed until the stored offsets are moved explicitly (``marketlake ingest --topic T
    --reset-offsets earliest|latest``).
    """


class BrokerError(MarketlakeError):
    """The Kafka broker cannot be started, stopped or reached."""


class SourceError(MarketlakeError):
    """A remote API or a source file could not be read."""


class ModelError(MarketlakeError):
    """Training, saving or loading a model failed."""


class ModelNotFoundError(ModelError):
    """No registered model matches the name, version or alias asked for."""


class DataError(MarketlakeError):
    """There is not enough usable data for the step asked for."""
