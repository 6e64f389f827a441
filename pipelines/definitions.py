"""The single Dagster entry point: every asset, check, resource, job, sensor and schedule.

Definitions are collected from their modules (``assets/*`` for assets, checks, and the jobs,
sensors and schedules that sit beside them; ``pipelines/sensors.py`` and, when present,
``pipelines/schedules.py`` for the rest), so adding one to its module is enough for it to show
up here.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import Any

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,  # not re-exported by dagster; jobs from define_asset_job
)

import assets as assets_package
from pipelines.resources import default_resources

SCHEDULING_MODULES = ("pipelines.sensors", "pipelines.schedules")


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


def _scheduling_modules() -> list[ModuleType]:
    modules = []
    for name in SCHEDULING_MODULES:
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return modules


def all_assets() -> list[dg.AssetsDefinition]:
    """Every asset definition of marketlake."""
    return list(dg.load_assets_from_modules(asset_modules()))  # type: ignore[arg-type]


def build_definitions() -> dg.Definitions:
    """Collect the definitions; resources are resolved from the environment at run time."""
    modules = asset_modules()
    scheduling = [*modules, *_scheduling_modules()]
    return dg.Definitions(
        assets=dg.load_assets_from_modules(modules),
        asset_checks=dg.load_asset_checks_from_modules(modules),
        jobs=_members(UnresolvedAssetJobDefinition, scheduling),
        sensors=_members(dg.SensorDefinition, scheduling),
        schedules=_members(dg.ScheduleDefinition, scheduling),
        resources=default_resources(),
    )


defs = build_definitions()
