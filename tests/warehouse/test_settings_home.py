"""Importing marketlake keeps every tool out of ``$HOME``, even outside the CLI (a notebook).

The packages must be imported before the libraries (MLflow reads its telemetry switch when it is
first imported): the notebooks do so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import training.registry, serving.service, pipelines.definitions
import mlflow
mlflow.set_tracking_uri("sqlite:///" + __import__("os").path.abspath("mlflow.db"))
mlflow.search_experiments()
"""


def test_importing_every_package_writes_nothing_into_home(tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    keep = {"PATH", "LANG", "LC_ALL", "TMPDIR"}
    env = {name: value for name, value in os.environ.items() if name in keep}
    env.update(HOME=str(home), PYTHONPATH=str(REPO_ROOT))
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    written = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    assert written == []
