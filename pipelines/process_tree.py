"""Stopping a process with everything it started, and telling a process from a reused pid.

``marketlake up`` starts each component in its own process group, but some components start
processes that leave it (BentoML's workers call ``setsid``), so stopping a group is not enough:
:func:`stop_tree` walks the process tree with psutil, sends SIGTERM to all of it, waits, and
SIGKILLs what is left. :func:`started_at` records when a process started, so a pid written in
``up.json`` by a process that has since died (and whose pid was reused) is never killed.
"""

from __future__ import annotations

import contextlib
import os
import signal

import psutil


def started_at(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), or ``None`` when there is no such process."""
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def same_process(pid: int, created: float | None) -> bool:
    """Whether ``pid`` is alive (not a zombie) and, when ``created`` is given, started then."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return created is None or abs(process.create_time() - created) < 0.01
    except psutil.Error:
        return False


def stop_tree(pid: int, *, wait_s: float = 20.0) -> list[int]:
    """SIGTERM ``pid`` and all its descendants, SIGKILL those alive after ``wait_s``.

    Returns:
        The pids that had to be killed.
    """
    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
    for process in family:
        with contextlib.suppress(psutil.Error):
            process.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(family, timeout=wait_s)
    # children started while the root was stopping, or orphaned by it
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=5)
    return [p.pid for p in alive]


def processes_of_home(
    home: str,
    *,
    commands: tuple[str, ...] = ("marketlake", "dagster", "bentoml", "tansu", "mlflow"),
) -> list[int]:
    """Processes started for the state folder ``home`` (``MARKETLAKE_HOME`` in their environment)
    whose command line names one of ``commands``: what ``down`` must leave none of."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if process.pid == os.getpid():
            continue
        try:
            cmdline = " ".join(process.info["cmdline"] or [])
            if not any(name in cmdline for name in commands):
                continue
            if process.environ().get("MARKETLAKE_HOME") == home:
                found.append(process.pid)
        except psutil.Error:
            continue
    return found
