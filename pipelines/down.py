"""``marketlake down``: stop what ``marketlake up`` started, even when ``up`` itself was killed."""

from __future__ import annotations

import os
import signal
import time

from pipelines.process_tree import stop_tree
from pipelines.up_state import clear_up_state, read_up_state
from warehouse.errors import MarketlakeError
from warehouse.settings import Settings


def stop_embedded_broker_landing_first(settings: Settings) -> None:
    """Land what the embedded broker still holds (the lander has stopped), then stop it."""
    from pipelines.broker_stop import stop_embedded_broker

    try:
        stopped = stop_embedded_broker(settings, force=True)
    except MarketlakeError as exc:  # force: only the stop itself can fail here
        print(f"stopping the broker failed: {exc}", flush=True)
        return
    for topic, count in stopped.landed.items():
        if count:
            print(f"{topic}: landed {count} records before stopping the broker", flush=True)
    for topic, count in stopped.dropped.items():
        if count:
            print(f"{topic}: {count} records could not be landed and were dropped", flush=True)


def run_down(settings: Settings, *, wait_s: float = 120.0) -> list[str]:
    """Stop the live system of ``settings.home``; return what was stopped."""
    state = read_up_state(settings.home)
    if state is None:
        return []
    stopped = []
    up_pid = state.running("up")
    if up_pid is not None:
        os.kill(up_pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        while state.running("up") and time.monotonic() < deadline:
            time.sleep(0.2)
        stopped.append(f"up (pid {up_pid})")
    for name in state.pids:  # whatever a killed `up` left behind
        pid = state.running(name)
        if name == "up" or pid is None:
            continue
        if name == "broker":
            stop_embedded_broker_landing_first(settings)  # lands what is still unlanded first
        else:
            stop_tree(pid, wait_s=15)
        stopped.append(f"{name} (pid {pid})")
    if still := [name for name in state.pids if state.running(name)]:
        raise MarketlakeError(f"still running after `down`: {', '.join(still)}")
    clear_up_state(settings.home)
    return stopped
