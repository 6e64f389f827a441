"""Shared fixtures: an isolated state folder, the embedded broker, and the shared real data."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

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

for _name, _value in tool_home_environment(_SESSION_HOME).items():
    os.environ[_name] = _value
os.environ["DAGSTER_HOME"] = str(_SESSION_HOME / "dagster")
Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)


def shared_data_file(name: str) -> Path:
    """A file of ``../shared/data``; skip when absent, fail when the data is required."""
    path = SHARED_DATA / name
    if path.exists():
        return path
    if os.environ.get("MARKETLAKE_REQUIRE_SHARED_DATA") == "1":
        pytest.fail(f"{path} is missing and MARKETLAKE_REQUIRE_SHARED_DATA=1")
    pytest.skip(f"{path} is not here (a fresh clone has no ../shared/data)")


@pytest.fixture(scope="session")
def broker() -> Iterator[str]:
    """One embedded Tansu broker for the whole test session; yields its bootstrap address."""
    from pipelines.broker import start_broker, stop_broker

    directory = Path(tempfile.mkdtemp(prefix="marketlake-test-broker-"))
    info = start_broker(directory)
    try:
        yield info.bootstrap
    finally:
        stop_broker(directory)


@pytest.fixture
def lake_dir(tmp_path: Path) -> Path:
    """A fresh local lake root."""
    path = tmp_path / "lake"
    path.mkdir()
    return path
