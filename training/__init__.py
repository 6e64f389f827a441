"""Models and their lifecycle: datasets, the LSTM, evaluation, registry, sentiment."""

import warehouse  # noqa: F401  (first: tool homes and telemetry stay in the state folder)
