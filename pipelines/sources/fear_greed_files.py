"""Fear & Greed history files -> ``market.fear_greed`` messages.

Two layouts:

- JSON: an alternative.me ``/fng/`` response, or just its ``data`` array (``value``,
  ``value_classification``, ``timestamp`` in unix seconds, as strings);
- CSV: a header with ``value`` and ``value_classification`` (or ``classification``) and a time
  in ``timestamp`` (unix seconds) or, when that is absent, ``date`` (``YYYY-MM-DD``, UTC).

Messages come oldest first with ``source`` ``"file:<name>"``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from pipelines.sources.alternative_me import fear_greed_from_payload, fear_greed_from_records
from pipelines.sources.event_time import text_to_ms
from warehouse.errors import SourceError
from warehouse.topics import Record

CLASSIFICATION_COLUMNS: tuple[str, ...] = ("value_classification", "classification")
TIME_COLUMNS: tuple[str, ...] = ("timestamp", "date")


def read_fear_greed_file(path: Path | str) -> list[Record]:
    """Read a Fear & Greed JSON or CSV file into messages, oldest first.

    Raises:
        SourceError: missing file, unknown layout, or an unreadable entry (named).
    """
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"fear & greed file {path} does not exist")
    source = f"file:{path.name}"
    if path.suffix.lower() == ".json":
        try:
            payload: Any = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SourceError(f"{path}: not a readable JSON file ({exc})") from None
        try:
            return fear_greed_from_payload(payload, source=source)
        except SourceError as exc:
            raise SourceError(f"{path}: {exc}") from None
    return _read_csv(path, source)


def _read_csv(path: Path, source: str) -> list[Record]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip().lower() for c in reader.fieldnames or []]
        label = next((c for c in CLASSIFICATION_COLUMNS if c in columns), None)
        when = next((c for c in TIME_COLUMNS if c in columns), None)
        if "value" not in columns or label is None or when is None:
            raise SourceError(
                f"{path}: unknown fear & greed layout, columns {reader.fieldnames}; expected "
                f"'value', one of {list(CLASSIFICATION_COLUMNS)} and one of {list(TIME_COLUMNS)}"
            )
        entries: list[dict[str, Any]] = []
        for row in reader:
            clean = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
            try:
                ts = text_to_ms(clean[when])
            except SourceError as exc:
                raise SourceError(f"{path} line {reader.line_num}: {exc}") from None
            entries.append(
                {"value": clean["value"], "value_classification": clean[label], "timestamp": ts}
            )
    try:
        return fear_greed_from_records(entries, source=source)
    except SourceError as exc:
        raise SourceError(f"{path}: {exc}") from None
