"""``up``'s process handling on real processes: stopping whole trees, restarting what dies (and
giving up), start-up failures, and ``down`` never killing a process that reused a pid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from pipelines.down import run_down
from pipelines.process_tree import processes_of_home, same_process, started_at
from pipelines.up import (
    RESTARTS_PER_COMPONENT,
    Component,
    LiveSystem,
    UpOptions,
    stop_process,
    supervise,
    wait_until_ready,
)
from pipelines.up_state import UpState, read_up_state, write_up_state
from warehouse.errors import MarketlakeError
from warehouse.settings import Settings, load_settings

PY = sys.executable


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings({"MARKETLAKE_HOME": str(tmp_path)})


def _system(settings: Settings) -> LiveSystem:
    return LiveSystem(
        settings,
        UpOptions(),
        urls={"api_url": "http://127.0.0.1:1", "dagster_url": "http://127.0.0.1:2"},
    )


def test_stop_process_stops_children_that_left_its_process_group(tmp_path: Path) -> None:
    """BentoML's workers call setsid: killing the group alone would orphan them."""
    pid_file = tmp_path / "worker.pid"
    worker = (
        f"import os, time; os.setsid(); open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
        "time.sleep(120)"
    )
    parent = subprocess.Popen(
        [
            PY,
            "-c",
            f"import subprocess, time; subprocess.Popen([{PY!r}, '-c', {worker!r}]); "
            "time.sleep(120)",
        ],
        start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the worker did not start"
        time.sleep(0.05)
    worker_pid = int(pid_file.read_text())
    assert os.getpgid(worker_pid) != os.getpgid(parent.pid)  # it left the group
    stop_process(parent, wait_s=5)
    assert parent.poll() is not None
    deadline = time.monotonic() + 5
    while psutil.pid_exists(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not same_process(worker_pid, None)


def test_a_component_that_keeps_dying_is_restarted_then_given_up(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    system = _system(settings)
    system.start(Component("lander", [PY, "-c", "import sys; sys.exit(3)"]))
    stop = threading.Event()
    thread = threading.Thread(target=supervise, args=(system, stop), kwargs={"check_s": 0.05})
    thread.start()
    deadline = time.monotonic() + 30
    while system.components["lander"].restarts <= RESTARTS_PER_COMPONENT:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    stop.set()
    thread.join(timeout=10)
    out = capsys.readouterr().out
    assert out.count("lander exited with code 3; restarting") == RESTARTS_PER_COMPONENT
    assert out.count("not restarting it after") == 1  # said once
    state = read_up_state(settings.home)
    assert state is not None and state.pids["lander"] == system.components["lander"].process.pid  # type: ignore[union-attr]


def test_a_component_that_exits_while_starting_fails_up_naming_its_log(
    settings: Settings,
) -> None:
    system = _system(settings)
    system.start(
        Component(
            "api", [PY, "-c", "import sys; sys.exit(1)"], ready_url="http://127.0.0.1:1/livez"
        )
    )
    with pytest.raises(
        MarketlakeError, match=r"api exited with code 1 while starting; see .*api\.log"
    ):
        wait_until_ready(system, timeout_s=20)


def test_a_replay_source_that_finished_at_once_is_not_a_failed_start(settings: Settings) -> None:
    system = _system(settings)
    system.start(Component("source", [PY, "-c", "pass"]))
    system.components["source"].process.wait()  # type: ignore[union-attr]
    wait_until_ready(system, timeout_s=5)  # nothing to wait for, nothing failed


def test_down_never_kills_a_process_that_reused_a_recorded_pid(settings: Settings) -> None:
    # up.json of an `up` that crashed long ago; its lander's pid now belongs to this test
    write_up_state(
        settings.home,
        UpState(
            api_url="http://127.0.0.1:1",
            dagster_url="http://127.0.0.1:2",
            mlflow_url=None,
            pids={"up": os.getpid(), "lander": os.getpid()},
            created={"up": 1.0, "lander": 1.0},
        ),
    )
    assert run_down(settings, wait_s=1) == []
    assert read_up_state(settings.home) is None  # the stale file is gone, we are alive


def test_up_state_files_without_process_start_times_still_load(settings: Settings) -> None:
    (settings.home / "up.json").write_text(
        json.dumps(
            {
                "api_url": "http://127.0.0.1:1",
                "dagster_url": "http://127.0.0.1:2",
                "mlflow_url": None,
                "pids": {"up": os.getpid()},
                "started_at": "2026-11-30T00:00:00+00:00",
                "source": "none",
            }
        )
    )
    state = read_up_state(settings.home)
    assert state is not None and state.running("up") == os.getpid()
    assert started_at(os.getpid()) is not None


def test_processes_of_home_finds_a_process_by_its_state_folder(tmp_path: Path) -> None:
    env = {**os.environ, "MARKETLAKE_HOME": str(tmp_path)}
    child = subprocess.Popen([PY, "-c", "import time; time.sleep(30)", "marketlake"], env=env)
    try:
        deadline = time.monotonic() + 10
        while child.pid not in processes_of_home(str(tmp_path)):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait()
    assert child.pid not in processes_of_home(str(tmp_path))
