"""Run the Dagster assets in-process on the project's persistent instance."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg

from warehouse.errors import MarketlakeError
from warehouse.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
WALK_FORWARD_KEY = dg.AssetKey(["ml", "evaluation"])
PRICE_MODEL_KEY = dg.AssetKey(["ml", "price_model"])


def ensure_dagster_home(settings: Settings) -> Path:
    """Create ``DAGSTER_HOME`` (default ``<home>/dagster``) holding the root ``dagster.yaml``."""
    home = Path(os.environ.get("DAGSTER_HOME") or settings.dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    source = REPO_ROOT / "dagster.yaml"
    if not target.exists() or target.read_bytes() != source.read_bytes():
        shutil.copyfile(source, target)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def materialize_assets(
    settings: Settings, *, selection: str | None = None, max_epochs: int | None = None
) -> list[str]:
    """Materialize the selected assets in this process; the runs are stored in the instance.

    Args:
        settings: where the instance, the lake and MLflow live.
        selection: a Dagster asset selection string (``"*"``: every asset); ``None`` selects
            every asset except the walk-forward evaluation, which trains one model per fold and
            runs on its weekly schedule instead.
        max_epochs: overrides the training epochs of the model and evaluation assets.

    Returns:
        One line per materialized asset with the metadata it reported.
    """
    ensure_dagster_home(settings)
    from pipelines.definitions import all_assets, asset_modules
    from pipelines.resources import default_resources

    run_config: dict[str, object] = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    assets = all_assets()
    chosen = (
        dg.AssetSelection.from_coercible(selection)
        if selection
        else (dg.AssetSelection.all() - dg.AssetSelection.assets(WALK_FORWARD_KEY))
    )
    if max_epochs is not None:
        selected = chosen.resolve(assets)
        run_config["ops"] = {
            key.to_python_identifier(): {"config": {"max_epochs": max_epochs}}
            for key in (PRICE_MODEL_KEY, WALK_FORWARD_KEY)
            if key in selected
        }
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize(
            [*assets, *dg.load_asset_checks_from_modules(asset_modules())],
            instance=instance,
            resources=default_resources(),
            selection=chosen,
            run_config=run_config,
            raise_on_error=False,
        )
    if not result.success:
        errors = [
            str(event.event_specific_data.error.message).strip()  # type: ignore[union-attr]
            for event in result.all_events
            if event.is_step_failure
        ]
        what = selection or "the default selection"
        raise MarketlakeError(f"materialization of {what} failed: {' | '.join(errors)}")
    lines = []
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization  # type: ignore[union-attr]
        keys = (
            "rows",
            "rejects",
            "version",
            "table_version",
            "model_version",
            "promoted",
            "scored",
            "pending",
            "skipped",
        )
        shown = {k: v.value for k, v in materialization.metadata.items() if k in keys}
        lines.append(f"{materialization.asset_key.to_user_string()}: {shown}")
    lines.append(f"run {result.run_id} stored in {os.environ['DAGSTER_HOME']}")
    return lines
