"""Orchestration and the command line: Kafka, Dagster definitions, sensors, the CLI."""

import warehouse  # noqa: F401  (first: tool homes and telemetry stay in the state folder)
