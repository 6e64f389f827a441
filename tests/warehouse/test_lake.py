"""Exactly-once appends under racing writers, on real Delta tables."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
import pytest

from warehouse.errors import CommitConflictError
from warehouse.lake import TableLocation, append_exactly_once, read_table, transaction_versions

ROUNDS = 20


def _race(location: TableLocation, expected: int | None, offset: int) -> list[object]:
    """Two writers that read the same stored offset append the same records at once."""
    rows = pa.table({"offset": pa.array([offset, offset + 1], pa.int64())})
    start = threading.Barrier(2)
    outcomes: list[object] = []

    def write() -> None:
        start.wait()
        try:
            outcomes.append(
                append_exactly_once(
                    location, rows, transactions={"p0": offset + 1}, expected={"p0": expected}
                )
            )
        except CommitConflictError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=write) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


@pytest.mark.parametrize("existing", [False, True], ids=["creating", "appending"])
def test_two_writers_with_the_same_read_never_both_land(tmp_path: Path, existing: bool) -> None:
    for round_ in range(ROUNDS):
        location = TableLocation(str(tmp_path / f"table_{round_}"))
        expected = None
        if existing:
            seed = pa.table({"offset": pa.array([-2, -1], pa.int64())})
            append_exactly_once(location, seed, transactions={"p0": -1}, expected={"p0": None})
            expected = -1
        outcomes = _race(location, expected, offset=0)
        conflicts = [o for o in outcomes if isinstance(o, CommitConflictError)]
        assert len(outcomes) == 2 and len(conflicts) == 1, outcomes
        assert "nothing was written" in str(conflicts[0])
        offsets = read_table(location, columns=["offset"])["offset"].to_list()
        assert sorted(offsets) == ([-2, -1] if existing else []) + [0, 1]
        assert transaction_versions(location, ["p0"]) == {"p0": 1}


def test_a_commit_against_moved_offsets_writes_nothing(tmp_path: Path) -> None:
    location = TableLocation(str(tmp_path / "table"))
    rows = pa.table({"offset": pa.array([0], pa.int64())})
    append_exactly_once(location, rows, transactions={"p0": 0}, expected={"p0": None})
    with pytest.raises(CommitConflictError, match="expected None, found 0"):
        append_exactly_once(location, rows, transactions={"p0": 0}, expected={"p0": None})
    assert read_table(location).height == 1
