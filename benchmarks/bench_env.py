"""Imported first by every benchmark script: the import path and the tool homes.

Run as a script, a benchmark's folder comes first on ``sys.path``, where ``training.py`` would
shadow the ``training`` package: the repository root takes its place. The tool homes and
telemetry switches go under the state folder, as for every marketlake command, so nothing is
written to ``$HOME``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))
sys.path.append(str(HERE))  # last: the benchmarks' own helper modules, shadowing nothing
sys.modules.pop("training", None)

from warehouse.settings import apply_tool_homes, load_settings  # noqa: E402

apply_tool_homes(load_settings())
