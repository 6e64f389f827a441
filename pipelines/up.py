"""``marketlake up``: the whole live system on the project's state folder, and ``down``.

``up`` starts the embedded broker (unless ``MARKETLAKE_KAFKA_BOOTSTRAP`` names a cluster), the
live lander, the Dagster webserver and daemon (automation running), the BentoML service, an
optional MLflow UI and an optional source; waits until each answers; writes
``$MARKETLAKE_HOME/up.json``; prints the URLs; then watches its children, restarting any that
dies (the broker included: landing and sources follow it). Ctrl-C, SIGTERM or ``marketlake down``
stop everything it started, sources first and the broker last, so what was produced is landed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from pipelines.broker import broker_status, free_port, port_open, start_broker
from pipelines.down import stop_embedded_broker_landing_first
from pipelines.materialize import ensure_dagster_home
from pipelines.process_tree import started_at, stop_tree
from pipelines.up_state import UpState, clear_up_state, read_up_state, write_up_state
from warehouse.errors import ConfigError, MarketlakeError
from warehouse.settings import Settings

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STOP_ORDER = ("source", "lander", "api", "mlflow", "dagster_daemon", "dagster_webserver")
RESTARTS_PER_COMPONENT = 5


@dataclass(frozen=True)
class UpOptions:
    """What ``marketlake up`` starts.

    Attributes:
        source: ``none`` (default), ``simulate``, ``replay`` or ``live``.
        replay_file: the OHLCV file of ``replay``.
        speed: market hours per wall-clock hour of ``simulate``/``replay`` (default 1).
        api_port, dagster_port, mlflow_port: ports on 127.0.0.1; 0 picks a free one
            (defaults 3000, 3001; MLflow only when ``mlflow_port`` is not ``None``).
        symbols: symbols of ``simulate``/``live``; ``None``: those of the lake.
        ready_timeout_s: how long to wait for every component to answer (default 180 s).
    """

    source: str = "none"
    replay_file: Path | None = None
    speed: float = 1.0
    api_port: int = 3000
    dagster_port: int = 3001
    mlflow_port: int | None = None
    symbols: tuple[str, ...] | None = None
    ready_timeout_s: float = 180.0


@dataclass
class Component:
    """One child process of ``up``."""

    name: str
    command: list[str]
    ready_url: str | None = None
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    log_path: Path | None = None


@dataclass
class LiveSystem:
    """The running children and how to reach them."""

    settings: Settings
    options: UpOptions
    components: dict[str, Component] = field(default_factory=dict)
    started_broker: bool = False
    urls: dict[str, str] = field(default_factory=dict)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def logs(self) -> Path:
        return self.settings.home / "logs"

    def start(self, component: Component) -> None:
        """Start ``component`` in its own process group, its output appended to its log."""
        self.logs.mkdir(parents=True, exist_ok=True)
        component.log_path = self.logs / f"{component.name}.log"
        out = component.log_path.open("ab")
        component.process = subprocess.Popen(
            component.command,
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped with all its workers
        )
        out.close()
        self.components[component.name] = component

    def pids(self) -> dict[str, int]:
        """component name -> pid of everything running now (``up`` itself included)."""
        pids = {"up": os.getpid()}
        info = broker_status(self.settings.broker_dir)
        if info is not None and self.started_broker:
            pids["broker"] = info.pid
        for name, component in self.components.items():
            if component.process is not None:
                pids[name] = component.process.pid
        return pids


def _port(requested: int) -> int:
    if requested == 0:
        return free_port()
    if port_open("127.0.0.1", requested):
        raise ConfigError(
            f"port {requested} on 127.0.0.1 is taken (is `marketlake up` already running? "
            "see `marketlake status`); choose another with the --*-port options or 0 for a free one"
        )
    return requested


def plan(settings: Settings, options: UpOptions) -> tuple[list[Component], dict[str, str]]:
    """The components to start and the URLs they will answer on."""
    marketlake = str(BIN / "marketlake")
    api_port = _port(options.api_port)
    dagster_port = _port(options.dagster_port)
    urls = {
        "api_url": f"http://127.0.0.1:{api_port}",
        "dagster_url": f"http://127.0.0.1:{dagster_port}",
    }
    workspace = str(REPO_ROOT / "workspace.yaml")
    components = [
        Component("lander", [marketlake, "lander"]),
        Component(
            "dagster_webserver",
            [
                str(BIN / "dagster-webserver"),
                "-w",
                workspace,
                "-h",
                "127.0.0.1",
                "-p",
                str(dagster_port),
            ],
            ready_url=f"{urls['dagster_url']}/server_info",
        ),
        Component("dagster_daemon", [str(BIN / "dagster-daemon"), "run", "-w", workspace]),
        Component(
            "api",
            [
                str(BIN / "bentoml"),
                "serve",
                "serving.service:MarketlakeService",
                "--host",
                "127.0.0.1",
                "--port",
                str(api_port),
                "--working-dir",
                str(REPO_ROOT),
            ],
            ready_url=f"{urls['api_url']}/livez",
        ),
    ]
    if options.mlflow_port is not None:
        mlflow_port = _port(options.mlflow_port)
        urls["mlflow_url"] = f"http://127.0.0.1:{mlflow_port}"
        components.append(
            Component(
                "mlflow",
                [
                    str(BIN / "mlflow"),
                    "ui",
                    "--backend-store-uri",
                    settings.mlflow_tracking_uri,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(mlflow_port),
                ],
                ready_url=f"{urls['mlflow_url']}/health",
            )
        )
    if options.source != "none":
        command = [marketlake, "source", options.source, "--speed", str(options.speed)]
        if options.source == "replay":
            if options.replay_file is None:
                raise ConfigError("--source replay needs a file: --source replay FILE")
            command += ["--file", str(options.replay_file)]
        if options.symbols:
            command += ["--symbols", ",".join(options.symbols)]
        components.append(Component("source", command))
    return components, urls


def bring_up(settings: Settings, options: UpOptions) -> LiveSystem:
    """Start every component and wait until each answers; on failure stop what started."""
    existing = read_up_state(settings.home)
    if existing is not None and existing.running("up"):
        raise ConfigError(
            f"marketlake up is already running (pid {existing.pids['up']}): "
            "`marketlake status` shows it, `marketlake down` stops it"
        )
    # the children run in the repository folder: give them the absolute state folder, so a
    # default `.marketlake` resolved from the user's folder is the one they all use
    os.environ["MARKETLAKE_HOME"] = str(settings.home)
    ensure_dagster_home(settings)
    components, urls = plan(settings, options)
    system = LiveSystem(settings, options, urls=urls)
    try:
        if settings.kafka_bootstrap is None:
            system.started_broker = broker_status(settings.broker_dir) is None
            info = start_broker(settings.broker_dir)
            print(f"broker      {info.bootstrap} (embedded, pid {info.pid})", flush=True)
        for component in components:
            system.start(component)
        _write_state(system, ready=False)  # `down` and the lag sensors see it while it starts
        wait_until_ready(system, timeout_s=options.ready_timeout_s)
    except BaseException:
        shut_down(system)
        raise
    return system


def wait_until_ready(system: LiveSystem, *, timeout_s: float) -> None:
    """Wait until every component with a URL answers 200 and every other one stays alive."""
    deadline = time.monotonic() + timeout_s
    waiting = {name for name, c in system.components.items() if c.ready_url}
    while waiting:
        for name, component in system.components.items():
            assert component.process is not None
            code = component.process.poll()
            if code is not None and not (name == "source" and code == 0):  # a finished replay
                raise MarketlakeError(
                    f"{name} exited with code {component.process.returncode} while starting; "
                    f"see {component.log_path}"
                )
        for name in sorted(waiting):
            url = system.components[name].ready_url
            assert url is not None
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    waiting.discard(name)
            except httpx.HTTPError:
                pass
        if waiting and time.monotonic() > deadline:
            raise MarketlakeError(
                f"{', '.join(sorted(waiting))} did not answer within {timeout_s:.0f} s; see "
                + ", ".join(str(system.components[n].log_path) for n in sorted(waiting))
            )
        if waiting:
            time.sleep(0.5)


def supervise(system: LiveSystem, stop: threading.Event, *, check_s: float = 2.0) -> None:
    """Restart children (and the embedded broker) that die, until ``stop``.

    A component is restarted at most :data:`RESTARTS_PER_COMPONENT` times; then ``up`` says so
    once and goes on without it. A failed restart is reported and tried again at the next check.
    """
    while not stop.wait(check_s):
        try:
            _restart_dead(system, stop)
        except MarketlakeError as exc:
            print(f"restarting a component failed: {exc}; trying again", flush=True)
            log.warning("restarting a component failed: %s", exc)


def _restart_dead(system: LiveSystem, stop: threading.Event) -> None:
    if system.started_broker and broker_status(system.settings.broker_dir) is None:
        info = start_broker(system.settings.broker_dir)
        log.warning("the embedded broker had stopped; restarted at %s", info.bootstrap)
        print(f"broker restarted at {info.bootstrap} (pid {info.pid})", flush=True)
        _write_state(system)
    for name, component in list(system.components.items()):
        assert component.process is not None
        code = component.process.poll()
        if code is None or stop.is_set():
            continue
        if name == "source" and code == 0:
            continue  # a replay that finished
        if component.restarts >= RESTARTS_PER_COMPONENT:
            if component.restarts == RESTARTS_PER_COMPONENT:
                component.restarts += 1  # say it once
                print(
                    f"{name} exited with code {code} again; not restarting it after "
                    f"{RESTARTS_PER_COMPONENT} restarts: see {component.log_path}, then "
                    "`marketlake down` and `marketlake up`",
                    flush=True,
                )
            continue
        component.restarts += 1
        print(
            f"{name} exited with code {code}; restarting ({component.restarts} of "
            f"{RESTARTS_PER_COMPONENT}); see {component.log_path}",
            flush=True,
        )
        system.start(component)
        _write_state(system)


def _write_state(system: LiveSystem, *, ready: bool = True) -> None:
    pids = system.pids()
    write_up_state(
        system.settings.home,
        UpState(
            api_url=system.urls["api_url"],
            dagster_url=system.urls["dagster_url"],
            mlflow_url=system.urls.get("mlflow_url"),
            pids=pids,
            started_at=system.started_at,
            source=system.options.source,
            created={n: t for n, p in pids.items() if (t := started_at(p)) is not None},
            ready=ready,
        ),
    )


def stop_process(process: subprocess.Popen[bytes], *, wait_s: float = 20.0) -> None:
    """Stop ``process`` and every process it started (SIGTERM, SIGKILL after ``wait_s``)."""
    if process.poll() is None:
        stop_tree(process.pid, wait_s=wait_s)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # whatever is left of its group
    process.wait()


def shut_down(system: LiveSystem) -> None:
    """Stop every component ``up`` started: sources first, the broker last."""
    for name in STOP_ORDER:
        component = system.components.get(name)
        if component is not None and component.process is not None:
            stop_process(component.process, wait_s=60.0 if name == "lander" else 20.0)
    if system.started_broker:
        stop_embedded_broker_landing_first(system.settings)
    clear_up_state(system.settings.home)


def run_up(settings: Settings, options: UpOptions) -> int:
    """``marketlake up``: start, print the URLs, supervise until Ctrl-C, SIGTERM or ``down``."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    begin = time.monotonic()
    system = bring_up(settings, options)
    try:
        _write_state(system)
        print(f"\nmarketlake is up in {time.monotonic() - begin:.0f} s (state: {settings.home})")
        print(f"  API and dashboard  {system.urls['api_url']}/dashboard")
        print(f"  Dagster UI         {system.urls['dagster_url']}")
        if "mlflow_url" in system.urls:
            print(f"  MLflow UI          {system.urls['mlflow_url']}")
        print(f"  logs               {system.logs}")
        print("  `marketlake status` shows it; Ctrl-C or `marketlake down` stops it.", flush=True)
        supervise(system, stop)
    finally:
        print("\nstopping marketlake ...", flush=True)
        shut_down(system)
        print("stopped", flush=True)
    return 0
