"""What ``marketlake up`` started: ``$MARKETLAKE_HOME/up.json``, read by ``down``, ``status``
and the Dagster sensors (which leave bronze to the live lander while it runs).

The file holds the URLs of the UIs and the service, the process id of every component (``broker``,
``lander``, ``dagster_webserver``, ``dagster_daemon``, ``api``, ``source``, ``mlflow``) and when it
started. A component is "running" when its pid is alive; a stale file (after a crash) is harmless.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipelines.process_tree import same_process

UP_FILE = "up.json"


@dataclass(frozen=True)
class UpState:
    """The live system started by ``marketlake up``.

    Attributes:
        api_url: the BentoML service (``/predict``, ``/dashboard``).
        dagster_url: the Dagster UI.
        mlflow_url: the MLflow UI, ``None`` when not started.
        pids: component name -> process id (the ``up`` supervisor itself is ``up``).
        started_at: ISO 8601 UTC time ``up`` started.
        source: the source ``up`` runs (``none``, ``simulate``, ``replay``, ``live``).
        created: component name -> when its process started (epoch s), so that a pid reused by
            another process after a crash is never taken for the component.
        ready: whether every component answered (``False`` while ``up`` is starting).
    """

    api_url: str
    dagster_url: str
    mlflow_url: str | None
    pids: dict[str, int] = field(default_factory=dict)
    started_at: str = ""
    source: str = "none"
    created: dict[str, float] = field(default_factory=dict)
    ready: bool = True

    def running(self, name: str) -> int | None:
        """The pid of component ``name`` if that process is alive, else ``None``."""
        pid = self.pids.get(name)
        return pid if pid is not None and same_process(pid, self.created.get(name)) else None

    def alive(self) -> dict[str, bool]:
        """component name -> whether its process is alive."""
        return {name: self.running(name) is not None for name in self.pids}


def up_file(home: Path) -> Path:
    """``<home>/up.json``."""
    return home / UP_FILE


def write_up_state(home: Path, state: UpState) -> Path:
    """Write ``up.json`` atomically (a reader never sees half a file)."""
    target = up_file(home)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".json.tmp")
    partial.write_text(json.dumps(asdict(state), indent=2))
    partial.replace(target)
    return target


def read_up_state(home: Path) -> UpState | None:
    """The state ``up`` wrote, or ``None`` when there is none (or it cannot be read)."""
    target = up_file(home)
    try:
        data = json.loads(target.read_text())
        return UpState(**data)
    except (OSError, ValueError, TypeError):
        return None


def running_component(home: Path, name: str) -> int | None:
    """The pid of the live component ``name`` (e.g. ``"lander"``) if ``up`` runs it now."""
    state = read_up_state(home)
    return None if state is None else state.running(name)


def clear_up_state(home: Path) -> None:
    """Remove ``up.json`` (``up`` stopped)."""
    up_file(home).unlink(missing_ok=True)
