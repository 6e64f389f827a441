"""The single Dagster entry point: every asset, check, resource, job, sensor and schedule.

Assets, checks and jobs are collected from their modules (``assets/*`` and
``pipelines/sensors.py``), so adding one to its module is enough for it to show up here. Sensors
and schedules are assembled here, because how they start is decided here, in one place:

- ``live_automation`` evaluates the automation conditions of every asset that has one (silver,
  gold and the ml assets follow the layer below; training and evaluation run on their crons)
  every ``MARKETLAKE_AUTOMATION_INTERVAL_S`` seconds (default and minimum 5: see
  :data:`DAEMON_LOOP_S`);
- the four lag sensors request ingest runs when Kafka holds data bronze has not landed;
- ``nightly_lake_maintenance`` compacts and vacuums the lake.

All of them start running (the lake follows new data with no hand on it);
``MARKETLAKE_START_PAUSED=1`` makes all of them start stopped, to be switched on in the UI.
Runs execute their steps in one process: a step process would import this code location again
(about 10 s with torch and MLflow), which a new candle cannot wait for.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,  # not re-exported by dagster; jobs from define_asset_job
)

import assets as assets_package
from assets.maintenance import nightly_lake_maintenance
from pipelines.resources import default_resources
from pipelines.sensors import lag_sensors
from warehouse.errors import ConfigError

JOB_MODULES = ("pipelines.sensors",)

START_PAUSED_ENV = "MARKETLAKE_START_PAUSED"
"""``1`` (or ``true``/``yes``/``on``): every sensor and schedule starts stopped."""

AUTOMATION_INTERVAL_ENV = "MARKETLAKE_AUTOMATION_INTERVAL_S"
"""Seconds between two evaluations of the automation conditions (default and minimum 5)."""

DAEMON_LOOP_S = 5
"""The asset daemon evaluates automation sensors in a loop that starts an iteration at most every
5 s (``MIN_INTERVAL_LOOP_SECONDS`` in ``dagster/_daemon/asset_daemon.py``, 1.13), so a shorter
``minimum_interval_seconds`` is accepted by Dagster but not honoured."""

TICK_SLACK_S = 1
"""The sensor asks Dagster for one second less than the interval: a tick is skipped while less
than the minimum has passed since the previous tick *started*, which is a moment after its loop
iteration started; with a minimum of exactly 5 s most iterations see 4.9 s and skip (ticks
measured 10 s apart), with 4 s every iteration evaluates (5 s apart)."""

AUTOMATION_SENSOR = "live_automation"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


@dataclass(frozen=True)
class LiveSwitches:
    """How the sensors and schedules start; read from the environment by :meth:`from_env`.

    Attributes:
        start_paused: every sensor and schedule starts stopped (``MARKETLAKE_START_PAUSED``).
        automation_interval_s: seconds between evaluations of the automation conditions
            (``MARKETLAKE_AUTOMATION_INTERVAL_S``), at least :data:`DAEMON_LOOP_S`.
    """

    start_paused: bool = False
    automation_interval_s: int = DAEMON_LOOP_S

    def __post_init__(self) -> None:
        if self.automation_interval_s < DAEMON_LOOP_S:
            raise ConfigError(
                f"{AUTOMATION_INTERVAL_ENV}={self.automation_interval_s}: the Dagster asset daemon "
                f"evaluates automation at most every {DAEMON_LOOP_S} s; use {DAEMON_LOOP_S} or more"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LiveSwitches:
        """The switches set in ``env`` (default ``None``: ``os.environ``).

        Raises:
            ConfigError: a switch holds a value it does not understand.
        """
        env = os.environ if env is None else env
        paused = env.get(START_PAUSED_ENV, "").strip().lower()
        if paused not in _TRUE | _FALSE:
            raise ConfigError(
                f"{START_PAUSED_ENV}={env[START_PAUSED_ENV]!r}: use 1 to start every sensor and "
                "schedule stopped, or 0 (the default) to start them running"
            )
        interval = env.get(AUTOMATION_INTERVAL_ENV, "").strip() or str(DAEMON_LOOP_S)
        try:
            seconds = int(interval)
        except ValueError:
            raise ConfigError(
                f"{AUTOMATION_INTERVAL_ENV}={interval!r} is not a whole number of seconds"
            ) from None
        return cls(start_paused=paused in _TRUE, automation_interval_s=seconds)

    @property
    def sensor_status(self) -> dg.DefaultSensorStatus:
        return (
            dg.DefaultSensorStatus.STOPPED if self.start_paused else dg.DefaultSensorStatus.RUNNING
        )

    @property
    def schedule_status(self) -> dg.DefaultScheduleStatus:
        if self.start_paused:
            return dg.DefaultScheduleStatus.STOPPED
        return dg.DefaultScheduleStatus.RUNNING


def asset_modules() -> list[ModuleType]:
    """Every module of the ``assets`` package."""
    return [
        importlib.import_module(f"assets.{info.name}")
        for info in sorted(pkgutil.iter_modules(assets_package.__path__), key=lambda i: i.name)
    ]


def _members(kind: type, modules: list[ModuleType]) -> list[Any]:
    found: dict[int, Any] = {}
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, kind):
                found[id(value)] = value
    return list(found.values())


def all_assets() -> list[dg.AssetsDefinition]:
    """Every asset definition of marketlake."""
    return list(dg.load_assets_from_modules(asset_modules()))  # type: ignore[arg-type]


def automated_asset_keys(assets: Iterable[Any]) -> list[dg.AssetKey]:
    """The keys of the assets that carry an automation condition."""
    return [
        spec.key
        for asset in assets
        if isinstance(asset, dg.AssetsDefinition)
        for spec in asset.specs
        if spec.automation_condition is not None
    ]


def live_automation_sensor(
    assets: Iterable[Any], switches: LiveSwitches
) -> dg.AutomationConditionSensorDefinition:
    """The sensor evaluating the automation conditions of every asset that has one."""
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=dg.AssetSelection.assets(*automated_asset_keys(assets)),
        default_status=switches.sensor_status,
        minimum_interval_seconds=switches.automation_interval_s - TICK_SLACK_S,
        description=(
            "Silver, gold and predictions follow new bronze data; training and walk-forward "
            f"evaluation run on their crons. Evaluated every {switches.automation_interval_s} s "
            f"({AUTOMATION_INTERVAL_ENV})."
        ),
    )


def build_definitions(switches: LiveSwitches | None = None) -> dg.Definitions:
    """Collect the definitions; resources are resolved from the environment at run time.

    Args:
        switches: how sensors and schedules start; ``None`` (default) reads the environment.
    """
    switches = LiveSwitches.from_env() if switches is None else switches
    modules = asset_modules()
    assets = dg.load_assets_from_modules(modules)
    job_modules = [*modules, *(importlib.import_module(name) for name in JOB_MODULES)]
    return dg.Definitions(
        assets=assets,
        asset_checks=dg.load_asset_checks_from_modules(modules),
        jobs=_members(UnresolvedAssetJobDefinition, job_modules),
        sensors=[
            live_automation_sensor(assets, switches),
            *lag_sensors(default_status=switches.sensor_status),
        ],
        schedules=[nightly_lake_maintenance(default_status=switches.schedule_status)],
        resources=default_resources(),
        executor=dg.in_process_executor,
    )


defs = build_definitions()
