"""The notebooks run top to bottom against a small lake the test builds, and draw their plots."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pyarrow as pa
import pytest
from nbclient import NotebookClient

from warehouse.catalog import TABLES
from warehouse.lake import Lake, overwrite

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
END_MS = 1_699_999_200_000  # the small lake's last hour: 2023-11-14 22:00 UTC
HOURS = 72
SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def _scored_posts() -> pa.Table:
    """A post per hour and symbol, with the columns of silver/posts the notebooks read."""
    first = datetime.fromtimestamp(END_MS / 1000, tz=UTC) - timedelta(hours=HOURS - 1)
    rows = [
        {
            "ts": first + timedelta(hours=hour, minutes=17),
            "symbols": [asset],
            "score": ((hour * 7 + index * 3) % 11 - 5) / 5,
            "label": "neutral",
            "confidence": 0.8,
            "sentiment_model": "lexicon",
        }
        for hour in range(HOURS)
        for index, asset in enumerate(["BTC", "ETH"])
    ]
    schema = pa.schema(
        [
            ("ts", pa.timestamp("ms", tz="UTC")),
            ("symbols", pa.list_(pa.string())),
            ("score", pa.float64()),
            ("label", pa.string()),
            ("confidence", pa.float64()),
            ("sentiment_model", pa.string()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def run_notebook(name: str) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=120,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()
    return notebook


def images(notebook: nbformat.NotebookNode) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )


@pytest.fixture
def jupyter_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every Jupyter, IPython and matplotlib home under tmp_path; the kernel inherits them."""
    for variable, folder in {
        "JUPYTER_DATA_DIR": "jupyter/data",
        "JUPYTER_RUNTIME_DIR": "jupyter/runtime",
        "JUPYTER_CONFIG_DIR": "jupyter/config",
        "IPYTHONDIR": "ipython",
        "MPLCONFIGDIR": "matplotlib",
    }.items():
        monkeypatch.setenv(variable, str(tmp_path / folder))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    monkeypatch.setenv("MARKETLAKE_HOME", str(tmp_path / "home"))
    return tmp_path


@pytest.mark.parametrize(
    ("name", "posts", "plots", "text"),
    [
        # prices, indicators and the sentiment scatter
        ("market_overview.ipynb", True, 3, "symbol-hours with posts"),
        # without silver/posts the sentiment section says so instead of failing
        ("market_overview.ipynb", False, 2, "silver.posts is not materialized yet"),
        # the catalog, queries and the rows-per-version chart of time travel
        ("lake_tour.ipynb", False, 1, "gold.features"),
    ],
)
def test_notebook_runs_and_plots(
    jupyter_env: Path,
    small_lake: Callable[..., Lake],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    posts: bool,
    plots: int,
    text: str,
) -> None:
    # candles landed in two batches (gold gets versions 0 and 1), and optionally silver/posts
    lake = small_lake(hours=HOURS, seed=3, symbols=SYMBOLS, root=jupyter_env)
    if posts:
        overwrite(lake.location(TABLES["silver.posts"]), _scored_posts())
    monkeypatch.setenv("MARKETLAKE_LAKE_URI", lake.uri)
    notebook = run_notebook(name)
    assert images(notebook) == plots
    printed = json.dumps([cell.get("outputs", []) for cell in notebook.cells])
    assert text in printed
    assert lake.uri in printed  # it read the lake named by the environment


@pytest.mark.parametrize("name", ["market_overview.ipynb", "lake_tour.ipynb"])
def test_notebooks_are_committed_without_outputs(name: str) -> None:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
