"""The watcher's bookkeeping: a table that cannot be updated in place is opened again and logged
once per failure streak; a section's versions are recorded only once it was rebuilt."""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable

from serving.board_sections import SectionVersions, TableWatch
from warehouse.lake import Lake, append

LOG = "bentoml.marketlake"


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOG and r.levelno == logging.WARNING]


def test_a_table_that_cannot_be_updated_is_reopened_and_logged_once_per_streak(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    location = Lake(str(tmp_path / "lake")).location("silver/things")
    watch = TableWatch(location)
    assert watch.version() is None and watch.table is None  # no table yet
    append(location, pl.DataFrame({"x": [1]}))
    assert watch.version() == 0

    def unreadable(self: DeltaTable) -> None:
        raise OSError("log listing failed")

    caplog.set_level(logging.WARNING, logger=LOG)
    with monkeypatch.context() as patched:
        patched.setattr(DeltaTable, "update_incremental", unreadable)
        append(location, pl.DataFrame({"x": [2]}))
        assert watch.version() == 1  # opened again: the new version is seen all the same
        assert watch.version() == 1
        [warning] = _warnings(caplog)  # one line for the whole streak
        assert location.uri in warning.getMessage() and "log listing failed" in warning.getMessage()
        assert warning.exc_info is not None
    append(location, pl.DataFrame({"x": [3]}))
    assert watch.version() == 2  # updated in place again: the streak is over
    assert watch.table is not None and watch.table.version() == 2
    with monkeypatch.context() as patched:
        patched.setattr(DeltaTable, "update_incremental", unreadable)
        watch.version()
    assert len(_warnings(caplog)) == 2  # a new streak: a new line


def test_a_section_that_raised_is_rebuilt_until_it_works(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sections = SectionVersions()
    calls: list[set[str]] = []
    failing = True

    def build(moved: set[str]) -> list[str]:
        calls.append(moved)
        if failing:
            raise ValueError("bad row")
        return ["rebuilt"]

    caplog.set_level(logging.INFO, logger=LOG)
    versions = {"a": 1, "b": None}
    assert sections.rebuild("prices", versions, build) == []  # raised: nothing sent
    assert sections.rebuild("prices", versions, build) == []  # nothing moved, but retried
    assert calls == [{"a", "b"}, {"a", "b"}]
    [warning] = _warnings(caplog)  # once for the streak, with the exception
    assert "prices" in warning.getMessage() and "ValueError: bad row" in warning.getMessage()
    assert warning.exc_info is not None
    assert sections.built("prices", "a") is None  # not recorded while it fails

    failing = False
    assert sections.rebuild("prices", versions, build) == ["rebuilt"]
    assert sections.built("prices", "a") == 1
    assert sections.rebuild("prices", versions, build) == []  # recorded: not rebuilt again
    assert len(calls) == 3
    assert sections.rebuild("prices", {"a": 2, "b": None}, build) == ["rebuilt"]
    assert calls[-1] == {"a"}  # only the table that moved
    assert sections.rebuild("prices", {"a": 2, "b": None}, build, force=True) == ["rebuilt"]
    assert calls[-1] == set()  # forced: nothing moved
    assert len(_warnings(caplog)) == 1
