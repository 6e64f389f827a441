"""Delta I/O for every table of the lake: exactly-once appends, overwrites, reads, time travel.

A table is addressed by its URI (a local path or ``s3://...``) plus the storage options of the
lake. Nothing here knows about Kafka or Dagster: the landing step hands over Arrow data and the
app transactions (``app_id -> version``) that must commit with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import (
    CommitFailedError,
    DeltaError,
    DeltaProtocolError,
    TableNotFoundError,
)

from warehouse.errors import CommitConflictError, LakeError


@dataclass(frozen=True)
class TableLocation:
    """Where a Delta table lives: its URI and the storage options needed to reach it."""

    uri: str
    storage_options: Mapping[str, str] = field(default_factory=dict)

    def options(self) -> dict[str, str] | None:
        return dict(self.storage_options) or None


def open_table(location: TableLocation, *, version: int | None = None) -> DeltaTable | None:
    """Open a Delta table, at ``version`` if given (time travel); ``None`` if it does not exist."""
    try:
        if not DeltaTable.is_deltatable(location.uri, storage_options=location.options()):
            return None
        return DeltaTable(location.uri, version=version, storage_options=location.options())
    except TableNotFoundError:
        return None
    except DeltaError as exc:
        raise LakeError(f"cannot open Delta table {location.uri}: {exc}") from exc


def table_version(location: TableLocation) -> int | None:
    """The latest version of a table, or ``None`` if it does not exist yet."""
    table = open_table(location)
    return None if table is None else table.version()


def transaction_versions(location: TableLocation, app_ids: Sequence[str]) -> dict[str, int | None]:
    """The stored app-transaction version of each ``app_id`` (``None`` if never committed)."""
    table = open_table(location)
    if table is None:
        return dict.fromkeys(app_ids)
    return {app_id: table.transaction_version(app_id) for app_id in app_ids}


def append_exactly_once(
    location: TableLocation,
    data: pa.Table,
    *,
    transactions: Mapping[str, int],
    expected: Mapping[str, int | None],
    partition_by: Sequence[str] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> int:
    """Append ``data`` in one commit that also records each app transaction.

    Args:
        location: the table.
        data: the rows to append (may be empty when only the transactions must move).
        transactions: ``app_id -> version`` committed with the data (e.g. last Kafka offset).
        expected: ``app_id -> version`` the caller read before it built ``data``; if the table now
            stores anything else, another writer got there first and nothing is written.
        partition_by: partition columns, used when the table is created.
        metadata: custom commit metadata (shown in the table history).

    Returns:
        The table version of the new commit.

    Raises:
        CommitConflictError: the stored versions moved, or a concurrent commit conflicted.
    """
    # Check and commit against ONE snapshot: the commit is attempted at exactly the next version
    # with no delta-rs retries, so a writer that committed in between makes this attempt fail,
    # never both land. A writer that found no table creates it with mode "error", so it fails
    # when another writer created it in between instead of appending to it unchecked. A failed
    # attempt is retried (against a fresh snapshot, checked again) only when the stored versions
    # did not move: the other commit was not an ingest (a compaction).
    properties = CommitProperties(
        app_transactions=[Transaction(app_id, version) for app_id, version in transactions.items()],
        custom_metadata=dict(metadata or {}),
        max_commit_retries=0,
    )
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        snapshot = open_table(location)
        _check_stored(location, snapshot, expected)
        read_version = snapshot.version() if snapshot is not None else None
        try:
            write_deltalake(
                snapshot if snapshot is not None else location.uri,
                data,
                mode="append" if snapshot is not None else "error",
                partition_by=list(partition_by) if partition_by else None,
                storage_options=location.options(),
                commit_properties=properties,
            )
        except (CommitFailedError, DeltaProtocolError) as exc:
            if attempt == COMMIT_ATTEMPTS:
                raise CommitConflictError(
                    f"{location.uri}: commit conflict after {attempt} attempts, "
                    f"nothing was written: {exc}"
                ) from exc
            continue
        except DeltaError as exc:
            if "already exists" in str(exc) or "onflict" in str(exc):
                if attempt < COMMIT_ATTEMPTS:
                    continue
                raise CommitConflictError(
                    f"{location.uri}: commit conflict, nothing was written: {exc}"
                ) from exc
            raise LakeError(f"cannot append to {location.uri}: {exc}") from exc
        # no retries inside delta-rs: the commit is exactly the version after the one we read
        return read_version + 1 if read_version is not None else 0  # mode 'error' created it
    raise AssertionError("unreachable")  # pragma: no cover


COMMIT_ATTEMPTS = 3
"""Attempts of one exactly-once commit when other (non-ingest) commits got in between."""


def _check_stored(
    location: TableLocation, snapshot: DeltaTable | None, expected: Mapping[str, int | None]
) -> None:
    stored = {
        app: None if snapshot is None else snapshot.transaction_version(app) for app in expected
    }
    moved = {app: (expected[app], stored[app]) for app in expected if stored[app] != expected[app]}
    if moved:
        details = ", ".join(
            f"{app}: expected {exp}, found {got}" for app, (exp, got) in moved.items()
        )
        raise CommitConflictError(
            f"{location.uri}: another writer committed first ({details}); nothing was written"
        )


def append(
    location: TableLocation,
    data: pa.Table | pl.DataFrame,
    *,
    partition_by: Sequence[str] | None = None,
) -> int:
    """Append rows in one commit (no offsets involved: logs such as served predictions)."""
    arrow = data.to_arrow() if isinstance(data, pl.DataFrame) else data
    try:
        write_deltalake(
            location.uri,
            arrow,
            mode="append",
            partition_by=list(partition_by) if partition_by else None,
            storage_options=location.options(),
        )
    except DeltaError as exc:
        raise LakeError(f"cannot append to {location.uri}: {exc}") from exc
    version = table_version(location)
    assert version is not None
    return version


def overwrite(
    location: TableLocation,
    data: pa.Table | pl.DataFrame,
    *,
    partition_by: Sequence[str] | None = None,
    predicate: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> int:
    """Replace the table's rows (all of them, or those matching ``predicate``) in one commit.

    Args:
        location: the table.
        data: the new rows.
        partition_by: partition columns, used when the table is created.
        predicate: SQL predicate selecting the rows to replace (``None``: the whole table).
        metadata: custom commit metadata.

    Returns:
        The table version of the new commit.
    """
    arrow = data.to_arrow() if isinstance(data, pl.DataFrame) else data
    try:
        write_deltalake(
            location.uri,
            arrow,
            mode="overwrite",
            schema_mode="overwrite" if predicate is None else None,
            partition_by=list(partition_by) if partition_by else None,
            predicate=predicate,
            storage_options=location.options(),
            commit_properties=CommitProperties(custom_metadata=dict(metadata or {})),
        )
    except DeltaError as exc:
        raise LakeError(f"cannot overwrite {location.uri}: {exc}") from exc
    version = table_version(location)
    assert version is not None
    return version


def read_table(
    location: TableLocation,
    *,
    version: int | None = None,
    columns: Sequence[str] | None = None,
    filters: pl.Expr | None = None,
) -> pl.DataFrame:
    """Read a table (at ``version`` if given) into Polars; a missing table raises LakeError."""
    table = open_table(location, version=version)
    if table is None:
        raise LakeError(f"Delta table {location.uri} does not exist yet: materialize it first")
    dataset = table.to_pyarrow_dataset()
    frame = pl.scan_pyarrow_dataset(dataset)
    if columns is not None:
        frame = frame.select(list(columns))
    if filters is not None:
        frame = frame.filter(filters)
    return frame.collect()


@dataclass(frozen=True)
class Lake:
    """The root of the lake and the storage options every table in it shares."""

    uri: str
    storage_options: Mapping[str, str] = field(default_factory=dict)

    def location(self, table: str) -> TableLocation:
        """The location of ``table`` (e.g. ``"silver/candles"``) inside the lake."""
        return TableLocation(f"{self.uri.rstrip('/')}/{table}", self.storage_options)


def lake_filesystem(lake: Lake) -> Any:
    """An fsspec filesystem for listing the lake: s3fs for ``s3://``, the local one otherwise."""
    return filesystem_for(lake.uri, lake.storage_options)


def filesystem_for(uri: str, storage_options: Mapping[str, str]) -> Any:
    """The fsspec filesystem of ``uri``: s3fs for ``s3://``, the local one otherwise.

    The S3 credentials and endpoint come from the storage options (the ``AWS_*`` variables,
    see :mod:`warehouse.settings`).
    """
    if not uri.startswith("s3://"):
        import fsspec

        return fsspec.filesystem("file")
    import s3fs

    options = dict(storage_options)
    client_kwargs = {"region_name": options["AWS_REGION"]} if options.get("AWS_REGION") else {}
    return s3fs.S3FileSystem(
        key=options.get("AWS_ACCESS_KEY_ID"),
        secret=options.get("AWS_SECRET_ACCESS_KEY"),
        token=options.get("AWS_SESSION_TOKEN"),
        endpoint_url=options.get("AWS_ENDPOINT_URL"),
        client_kwargs=client_kwargs,
    )


def list_tables(lake: Lake) -> list[str]:
    """The Delta tables of the lake as ``layer/name`` (those with a ``_delta_log``), sorted."""
    filesystem = lake_filesystem(lake)
    root = fs_path(lake.uri)
    try:
        logs = filesystem.glob(f"{root}/*/*/_delta_log")
    except (OSError, ValueError) as exc:
        raise LakeError(f"cannot list the lake at {lake.uri}: {exc}") from exc
    return sorted(path[len(root) + 1 : -len("/_delta_log")] for path in logs)


def fs_path(uri: str) -> str:
    """``uri`` as an fsspec path (no ``s3://`` or ``file://`` scheme)."""
    return uri.removeprefix("s3://").removeprefix("file://").rstrip("/")
