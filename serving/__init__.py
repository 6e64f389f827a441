"""The HTTP service: predictions, signals, sentiment, market and the dashboard."""

import warehouse  # noqa: F401  (first: tool homes and telemetry stay in the state folder)
