"""Dagster software-defined assets: bronze, silver, gold, ml and maintenance."""

import warehouse  # noqa: F401  (first: tool homes and telemetry stay in the state folder)
