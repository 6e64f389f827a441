"""The trained price model as one object: network weights, features, scalers and horizons.

:class:`PricePredictor` is an MLflow ``PythonModel``: it is logged and registered as such (a
state dict inside a pyfunc, not torch.export, so the window length and the class survive), and
serving, batch prediction and evaluation all call the same :meth:`PricePredictor.predict_all`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import torch
from mlflow.pyfunc.model import PythonModel

from training.dataset import FeatureScaler, build_series, gather_windows, window_index
from training.network import PriceNetwork
from warehouse.errors import DataError, ModelError


@dataclass
class PriceModelBundle:
    """Everything needed to rebuild the network and feed it: plain numbers and arrays."""

    features: list[str]
    horizons: list[int]
    sequence_length: int
    hidden_size: int
    num_layers: int
    dropout: float
    feature_mean: np.ndarray
    feature_std: np.ndarray
    target_std: np.ndarray
    state: dict[str, np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def scaler(self) -> FeatureScaler:
        return FeatureScaler(
            tuple(self.features), self.feature_mean, self.feature_std, self.target_std
        )


class PricePredictor(PythonModel):
    """Predicts forward return and direction probability per horizon from gold feature rows."""

    def __init__(self, bundle: PriceModelBundle) -> None:
        self.bundle = bundle
        self._network: PriceNetwork | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"bundle": self.bundle}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.bundle = state["bundle"]
        self._network = None

    @property
    def horizons(self) -> list[int]:
        return list(self.bundle.horizons)

    def network(self) -> PriceNetwork:
        """The network with the trained weights, built once, in eval mode."""
        if self._network is None:
            b = self.bundle
            network = PriceNetwork(
                len(b.features),
                len(b.horizons),
                hidden_size=b.hidden_size,
                num_layers=b.num_layers,
                dropout=b.dropout,
            )
            network.load_state_dict({k: torch.from_numpy(v) for k, v in b.state.items()})
            network.eval()
            self._network = network
        return self._network

    def predict_windows(
        self, windows: np.ndarray, *, batch_size: int = 4096
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scaled windows ``(n, L, F)`` to (forward returns, up probabilities), each ``(n, H)``."""
        network = self.network()
        returns, probabilities = [], []
        with torch.inference_mode():
            for start in range(0, len(windows), batch_size):
                chunk = torch.from_numpy(np.ascontiguousarray(windows[start : start + batch_size]))
                scaled_return, logit = network(chunk)
                returns.append(scaled_return.numpy() * self.bundle.target_std)
                probabilities.append(torch.sigmoid(logit).numpy())
        if not returns:
            empty = np.zeros((0, len(self.bundle.horizons)))
            return empty, empty
        return np.concatenate(returns), np.concatenate(probabilities)

    def predict_all(self, gold: pl.DataFrame, *, latest_only: bool = False) -> pl.DataFrame:
        """Predict at every row of ``gold`` that has a full window (or the latest per symbol).

        Returns:
            ``symbol, ts`` then ``predicted_return_{h}h`` and ``direction_probability_{h}h`` for
            each horizon; ``ts`` is the time of the last feature row the prediction used.
        """
        missing = [f for f in self.bundle.features if f not in gold.columns]
        if missing:
            raise ModelError(
                f"the gold table lacks features this model needs: {', '.join(missing)}; "
                "rematerialize gold or retrain the model"
            )
        frame = gold
        for column in self._target_columns():
            if column not in frame.columns:
                frame = frame.with_columns(pl.lit(None, dtype=pl.Float64).alias(column))
        series = build_series(frame, self.bundle.scaler, self.bundle.horizons)
        index = window_index(series, self.bundle.sequence_length, require_targets=False)
        if latest_only:
            last = {s: e for s, e in zip(index.series, index.end, strict=True)}
            index = type(index)(np.array(list(last)), np.array(list(last.values())))
        if len(index) == 0:
            raise DataError(
                f"no symbol has {self.bundle.sequence_length} feature rows to predict from"
            )
        windows, _, _ = gather_windows(series, index, self.bundle.sequence_length)
        returns, probabilities = self.predict_windows(windows)
        columns: dict[str, Any] = {
            "symbol": [series[s].symbol for s in index.series],
            "ts": pl.Series(
                "ts",
                np.array(
                    [series[s].ts[e] for s, e in zip(index.series, index.end, strict=True)],
                    dtype="datetime64[us]",
                ),
            ),
        }
        for i, h in enumerate(self.bundle.horizons):
            columns[f"predicted_return_{h}h"] = returns[:, i]
            columns[f"direction_probability_{h}h"] = probabilities[:, i]
        result = pl.DataFrame(columns)
        return result.with_columns(pl.col("ts").dt.replace_time_zone("UTC").cast(gold.schema["ts"]))

    def _target_columns(self) -> list[str]:
        names = []
        for h in self.bundle.horizons:
            names += [f"target_return_{h}h", f"target_direction_{h}h"]
        return names

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        # (no type hints: MLflow would try to derive a schema from them)
        """MLflow pyfunc entry point: a pandas frame of gold rows in, predictions out."""
        gold = pl.from_pandas(model_input)
        latest = bool((params or {}).get("latest_only", True))
        return self.predict_all(gold, latest_only=latest).to_pandas()
