"""The table-hygiene benchmark runs end to end at a tiny size (so it does not rot).

It runs as users run it, ``python benchmarks/table_hygiene.py``, in a subprocess: the script's
``bench_env`` rewrites ``sys.path`` and ``sys.modules``, which must not leak into this session.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "benchmarks" / "table_hygiene.py"


def test_table_hygiene_benchmark_at_105_commits() -> None:
    # 105 commits: past delta-rs's default checkpoint interval (100), so one automatic checkpoint
    args = ["--commits", "105", "--records", "2", "--repeat", "1", "--json"]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout)
    assert figures["exactly_once"] is True
    assert figures["land_commits_per_s"] > 0
    # the maintained table took 105 more batches, each offset once (checked by the script)
    assert figures["land_window"] == 105 and figures["land_after_maintenance_commits_per_s"] > 0
    # what delta-rs does by default: interval 100, the first checkpoint at version 99
    assert figures["checkpoint_interval"] == 100
    assert figures["checkpoint_interval_is_delta_rs_default"] is True
    assert figures["automatic_checkpoints"] == 1
    assert figures["automatic_checkpoint_versions_first"] == [99]
    bare, before, after = figures["no_checkpoint"], figures["before"], figures["after"]
    assert bare["checkpoints"] == 0 and bare["commits_since_checkpoint"] == 105
    assert before["commits_since_checkpoint"] == 104 - 99
    assert before["files"] == bare["files"] == 105 == before["log_json_files"]
    # after maintenance: compacted (105 hours fit in 5 event dates) and checkpointed at the tip
    assert after["files"] <= 6 and after["commits_since_checkpoint"] == 0
    # the log retention property and the compaction commit, nothing vacuumed
    assert after["version"] == before["version"] + 2
    assert figures["files_compacted"] == 105 and figures["files_vacuumed"] == 0
    # log retention 0 h (the benchmark's default): every JSON commit before the tip went, and
    # while 105 more batches landed (versions 107..211) delta-rs's post-commit cleanup dropped
    # everything before its automatic checkpoint at 199
    assert figures["log_retention_hours"] == 0
    assert figures["log_retention"] == "interval 0 hours"
    assert after["log_json_files"] == 1 and figures["log_files_removed"] == 105 + 2 - 1
    assert figures["log_files_after_landing"] == 211 - 199 + 1
    assert figures["land_after_over_last_window"] > 0
    for state in (bare, before, after):
        assert state["open_ms"] > 0 and state["offsets_ms"] > 0 and state["read_ms"] > 0
    assert set(figures["ratios"]) == {
        f"{name}_{pair}"
        for name in ("open_ms", "offsets_ms", "read_ms")
        for pair in ("no_checkpoint_over_after", "before_over_after", "no_checkpoint_over_before")
    }
