"""Every served prediction, appended to ``gold/served_predictions`` in small batches.

Requests only add a row to an in-memory buffer; a background thread writes the buffer as one
Delta commit every ``flush_s`` seconds (and at shutdown), so a request never waits on the lake.
Joined with the gold targets later, the log gives the live accuracy of what was actually served.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

import polars as pl

from training.predictions import PREDICTION_SCHEMA
from warehouse.errors import MarketlakeError
from warehouse.lake import TableLocation, append

log = logging.getLogger(__name__)

SERVED_SCHEMA: dict[str, pl.DataType] = {
    **{name: kind for name, kind in PREDICTION_SCHEMA.items() if name != "predicted_at"},
    "served_at": pl.Datetime("us", "UTC"),
}
"""One row per answered request; ``ts`` is the feature time the prediction used."""


class PredictionLog:
    """Buffers served predictions and appends them to a Delta table.

    Args:
        location: the served-predictions table.
        flush_s: seconds between background flushes (default 5); ``None`` disables the thread
            (call :meth:`flush` yourself).
    """

    def __init__(self, location: TableLocation, *, flush_s: float | None = 5.0) -> None:
        self.location = location
        self._rows: list[dict[str, object]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if flush_s is not None:
            self._thread = threading.Thread(
                target=self._run, args=(flush_s,), name="prediction-log", daemon=True
            )
            self._thread.start()

    def record(
        self,
        *,
        symbol: str,
        ts: datetime,
        horizon_hours: int,
        predicted_return: float,
        direction_probability: float,
        model_name: str,
        model_version: int,
        served_at: datetime,
    ) -> None:
        """Add one served prediction to the buffer."""
        with self._lock:
            self._rows.append(
                {
                    "symbol": symbol,
                    "ts": ts,
                    "horizon_hours": horizon_hours,
                    "predicted_return": predicted_return,
                    "direction_probability": direction_probability,
                    "model_name": model_name,
                    "model_version": model_version,
                    "served_at": served_at,
                }
            )

    def flush(self) -> int:
        """Write the buffered rows in one commit; returns how many were written."""
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return 0
        try:
            append(self.location, pl.DataFrame(rows, schema=SERVED_SCHEMA))
        except MarketlakeError:
            with self._lock:
                self._rows = rows + self._rows  # keep them for the next attempt
            raise
        return len(rows)

    def close(self) -> None:
        """Stop the background thread and write what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()

    def _run(self, flush_s: float) -> None:
        while not self._stop.wait(flush_s):
            try:
                self.flush()
            except MarketlakeError as exc:
                log.warning("served predictions not written yet (will retry): %s", exc)
