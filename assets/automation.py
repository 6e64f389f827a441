"""How each layer follows the one below it: the automation conditions of the derived assets.

The ``live_automation`` sensor (``pipelines/definitions.py``) evaluates them every few seconds.
:func:`follows_upstream` does what ``AutomationCondition.eager()`` promises (run after a
dependency updates, once the dependencies exist, never while one of them or the asset itself is
running) without three traps that a live lake falls into:

- eager keeps "a dependency updated" pending until the asset is requested *or updated*, and when
  both happen between the same two evaluations the reset wins (an OR of resets carries no
  timestamps for Dagster to compare): a bronze batch landed while the silver run was ending is
  dropped, and waits for the next batch (an hour, for hourly candles). Here the two resets are
  separate, each compared by timestamp with the update that triggers;
- for the same reason eager drops the trigger "a dependency is requested in this tick" when the
  asset itself was updated since the previous tick; under a steady flow every other run would then
  hold only silver and gold and the next one the assets below them. Here a dependency requested
  in this tick always brings the asset into the same run;
- eager waits until every dependency exists. A lake where posts or Fear & Greed never arrived
  has no ``silver/posts`` or ``silver/fear_greed``, and gold (which treats them as optional)
  would wait forever although candles move: ``required`` names the dependencies that must exist;
- eager waits while any dependency is running. Under a steady flow of posts and candles one of
  gold's silver inputs is always running, and gold starved (measured: `up --source simulate
  --speed 3600` refreshed gold twice in 100 s while silver ran every 10 s). Only the ``required``
  dependencies hold the asset back; an optional one that is running is read at its last
  committed version, and its update triggers the asset again.

And not on top of data a blocking check rejected (:func:`upstream_blocking_check_failed`).
Training and walk-forward evaluation keep ``AutomationCondition.on_cron`` (``assets/ml.py``).
"""

# No `from __future__ import annotations` here: Dagster reads the context and config
# annotations at definition time and does not resolve string annotations.

from collections.abc import Sequence

import dagster as dg


def upstream_blocking_check_failed() -> dg.AutomationCondition:
    """True when a dependency's latest blocking check failed and it is not run again this tick.

    A failed blocking check already stops the downstream assets of its own run; this keeps a later
    run of the downstream asset alone (e.g. after a manual run of the dependency) from reading
    the rejected data. A dependency requested in the same tick re-runs its checks in that run.
    """
    return dg.AutomationCondition.any_deps_match(
        dg.AutomationCondition.any_checks_match(
            dg.AutomationCondition.check_failed(), blocking_only=True
        )
        & ~dg.AutomationCondition.will_be_requested()
    ).with_label("upstream_blocking_check_failed")


def follows_upstream(*, required: Sequence[dg.AssetKey] | None = None) -> dg.AutomationCondition:
    """Run when a dependency updated since the asset was last requested and last updated, or
    when a dependency is requested in the same tick (see the module doc).

    Args:
        required: the dependencies that must exist before the asset runs; ``None`` (default):
            all of them. The others are optional inputs: their updates trigger a run, their
            absence does not block one.
    """
    condition = dg.AutomationCondition
    dep_updated = condition.any_deps_match(condition.newly_updated()).with_label("dep_updated")
    pending = dep_updated.since(condition.newly_requested()).with_label(
        "dep_updated_since_requested"
    ) & dep_updated.since(condition.newly_updated()).with_label("dep_updated_since_updated")
    requested_now = condition.any_deps_match(condition.will_be_requested()).with_label(
        "dep_requested_now"
    )
    deps_missing = condition.any_deps_missing()
    deps_running = condition.any_deps_in_progress()
    label = "follows_upstream"
    if required is not None:
        names = ", ".join(key.to_user_string() for key in required)
        deps_missing = deps_missing.allow(dg.AssetSelection.assets(*required)).with_label(
            f"required_deps_missing({names})"
        )
        deps_running = deps_running.allow(dg.AssetSelection.assets(*required)).with_label(
            f"required_deps_in_progress({names})"
        )
        label = f"follows_upstream(required={names})"
    return (
        (pending | requested_now)
        & ~deps_missing
        & ~deps_running
        & ~condition.in_progress()
        & ~upstream_blocking_check_failed()
    ).with_label(label)
