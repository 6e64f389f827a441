"""Shared fixtures: an isolated state folder, the embedded broker, the shared real data, and a
small lake of simulated candles."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# Every tool home and telemetry switch points inside a throwaway state folder before any test
# module imports a library that reads them at import time.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="marketlake-test-home-"))
os.environ["MARKETLAKE_HOME"] = str(_SESSION_HOME)
os.environ.pop("MARKETLAKE_KAFKA_BOOTSTRAP", None)
os.environ.pop("MARKETLAKE_LAKE_URI", None)
os.environ.pop("MLFLOW_TRACKING_URI", None)

from warehouse.settings import tool_home_environment  # noqa: E402

if TYPE_CHECKING:
    from warehouse.lake import Lake

for _name, _value in tool_home_environment(_SESSION_HOME).items():
    os.environ[_name] = _value
os.environ["DAGSTER_HOME"] = str(_SESSION_HOME / "dagster")
Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)


def _required(path: Path) -> Path:
    """``path`` if it exists; else skip, or fail when MARKETLAKE_REQUIRE_SHARED_DATA=1."""
    if path.exists():
        return path
    if os.environ.get("MARKETLAKE_REQUIRE_SHARED_DATA") == "1":
        pytest.fail(f"{path} is missing and MARKETLAKE_REQUIRE_SHARED_DATA=1")
    pytest.skip(f"{path} is not here (a fresh clone has no ../shared/data)")


def shared_data_file(name: str) -> Path:
    """A file or folder of ``../shared/data``: skip when absent, fail when the data is required."""
    return _required(SHARED_DATA / name)


@pytest.fixture(scope="session")
def shared_data() -> Callable[[str], Path]:
    """:func:`shared_data_file`: ``shared_data("x.csv")`` is ``<repo>/../shared/data/x.csv``."""
    return shared_data_file


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The ``../shared/data`` folder; skip when absent, fail when the data is required."""
    return _required(SHARED_DATA)


@contextmanager
def running_broker(directory: Path) -> Iterator[str]:
    """An embedded Tansu broker keeping its state in ``directory``; yields its bootstrap address."""
    from pipelines.broker import start_broker, stop_broker

    info = start_broker(directory)
    try:
        yield info.bootstrap
    finally:
        stop_broker(directory)


@pytest.fixture(scope="session")
def broker_at() -> Callable[[Path], AbstractContextManager[str]]:
    """:func:`running_broker`, for tests that need a private broker (e.g. the real topic names)."""
    return running_broker


@pytest.fixture(scope="session")
def broker() -> Iterator[str]:
    """One embedded Tansu broker for the whole test session; yields its bootstrap address."""
    with running_broker(Path(tempfile.mkdtemp(prefix="marketlake-test-broker-"))) as bootstrap:
        yield bootstrap


@pytest.fixture
def lake_dir(tmp_path: Path) -> Path:
    """A fresh local lake root."""
    path = tmp_path / "lake"
    path.mkdir()
    return path


# The small lake: simulated candles of two symbols landed in two bronze batches, silver and gold
# refreshed after each, so gold/features has version 0 (the first batch) and version 1 (all).
SMALL_LAKE_SYMBOLS = ("BTCUSDT", "ETHUSDT")
SMALL_LAKE_END_MS = 1_699_999_200_000  # an hour boundary: 2023-11-14 22:00 UTC


def land_messages(
    lake: Lake,
    topic: str,
    messages: Iterable[Mapping[str, object]],
    *,
    kafka_timestamp_ms: int = 0,
    kafka_timestamp_field: str | None = None,
) -> None:
    """Land ``messages`` into the topic's bronze table as the ingest step does.

    Args:
        lake: the lake to land into.
        topic: the topic name, e.g. ``"market.candles"``.
        messages: the messages; they go to partition 0 at the offsets after those already landed.
        kafka_timestamp_ms: the Kafka timestamp of every record; default 0.
        kafka_timestamp_field: take each record's Kafka timestamp from this message field
            instead; default None.
    """
    from warehouse.bronze import REJECTS_TABLE, RawRecord, land_batch, stored_offsets
    from warehouse.topics import TOPICS

    spec = TOPICS[topic]
    location = lake.location(spec.table)
    start = stored_offsets(location, spec.table, spec.topic, [0])[0]
    first = 0 if start is None else start + 1
    records = [
        RawRecord(
            spec.topic,
            0,
            first + i,
            kafka_timestamp_ms if kafka_timestamp_field is None else int(m[kafka_timestamp_field]),
            None,
            json.dumps(m).encode(),
        )
        for i, m in enumerate(messages)
    ]
    land_batch(
        spec, records, bronze=location, rejects=lake.location(REJECTS_TABLE), expected={0: start}
    )


def land_candle_messages(
    lake: Lake, messages: Iterable[Mapping[str, object]], *, first: int | None = None
) -> Lake:
    """Land ``market.candles`` messages into bronze and refresh silver candles and gold features.

    Args:
        lake: the lake to land into.
        messages: candle messages; they become partition 0, offsets 0, 1, ... with each
            candle's open time as the Kafka timestamp.
        first: land the first ``first`` messages as one batch (and refresh), then the rest as a
            second; default None lands everything in one batch.

    Returns:
        ``lake``.
    """
    from warehouse.refresh import refresh_gold_features, refresh_silver_candles

    candles = list(messages)
    batches = [candles] if first is None else [candles[:first], candles[first:]]
    for batch in batches:
        land_messages(lake, "market.candles", batch, kafka_timestamp_field="open_time")
        refresh_silver_candles(lake)
        refresh_gold_features(lake)
    return lake


@pytest.fixture(scope="session")
def land() -> Callable[..., None]:
    """:func:`land_messages`: ``land(lake, topic, messages, *, kafka_timestamp_ms=0)``."""
    return land_messages


@pytest.fixture(scope="session")
def land_candles() -> Callable[..., Lake]:
    """:func:`land_candle_messages`, for tests that land candles of their own."""
    return land_candle_messages


@pytest.fixture(scope="session")
def small_lake(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Lake]:
    """A factory of small lakes; each call builds a fresh one.

    ``small_lake(hours=H, seed=S, first_hours=None, symbols=SMALL_LAKE_SYMBOLS, root=None)``
    simulates ``H`` hourly candles per symbol (seed ``S``, the last at SMALL_LAKE_END_MS), lands
    the first ``first_hours`` hours (default ``H // 2``) and then the rest, refreshing silver and
    gold after each, and returns the lake at ``<root>/lake`` (default root: a new temp folder).
    """
    from pipelines.simulator import simulate_candles
    from warehouse.lake import Lake

    def build(
        *,
        hours: int,
        seed: int,
        first_hours: int | None = None,
        symbols: Sequence[str] = SMALL_LAKE_SYMBOLS,
        root: Path | None = None,
    ) -> Lake:
        folder = root if root is not None else tmp_path_factory.mktemp("small-lake")
        messages = simulate_candles(symbols, hours=hours, seed=seed, end_ms=SMALL_LAKE_END_MS)
        split = (hours // 2 if first_hours is None else first_hours) * len(symbols)
        return land_candle_messages(Lake(str(folder / "lake")), messages, first=split)

    return build
