"""The maintenance asset keeps the Dagster instance from growing without bound: finished runs
older than the retention are deleted, recent ones are kept."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from assets.maintenance import purge_finished_runs


@dg.asset
def tiny() -> None: ...


def test_finished_runs_older_than_the_retention_are_deleted() -> None:
    with dg.instance_for_test() as instance:
        for _ in range(3):
            assert dg.materialize([tiny], instance=instance).success
        # recent runs are kept
        assert purge_finished_runs(instance, timedelta(days=7)) == 0
        assert len(instance.get_run_records()) == 3
        # once they are older than the retention, they go, in batches
        assert purge_finished_runs(instance, timedelta(0), batch=2) == 3
        assert instance.get_run_records() == []
