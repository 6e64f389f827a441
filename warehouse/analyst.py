"""The analyst warehouse: a DuckDB catalog with one view per Delta table of the lake.

:func:`open_catalog` runs ``warehouse/views.sql`` against an in-memory DuckDB database. Views read
the Delta tables through the ``delta`` extension loaded offline from the
``duckdb-extension-delta`` wheel (never installed from the internet); where it cannot serve the
lake (an ``s3://`` lake: reading S3 from DuckDB needs the httpfs extension, which is not
installed) the views read deltalake's Arrow datasets registered in the connection instead.

Delta-extension views see the latest version of a table at every query; Arrow views are a
snapshot taken when the catalog was opened. Time travel: :func:`table_as_of`, ``versions=`` to
pin whole views, or in SQL (delta reader) ``delta_scan('<uri>', version := N)``, the uri being
listed in ``main.marketlake_tables``. (A table macro cannot pass its argument to ``version``:
DuckDB 1.5 binds it as text, so there is no ``features_at(N)`` macro.)
"""

from __future__ import annotations

import importlib.util
import re
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
from deltalake import DeltaTable

from warehouse.catalog import TABLES
from warehouse.errors import ConfigError, DataError, LakeError
from warehouse.lake import Lake, open_table

VIEWS_SQL = Path(__file__).with_name("views.sql")
"""The catalog definition: one ``CREATE VIEW`` per table, with ``{{lake}}`` for the lake root."""

LAKE_PLACEHOLDER = "{{lake}}"
CATALOG_TABLE = "main.marketlake_tables"
"""Lists every table of the catalog: name, path, uri, whether it exists, version and reader."""

Reader = Literal["auto", "delta", "arrow"]

_VIEW_MARKER = re.compile(r"^-- view: (\w+\.\w+)\s*$", re.MULTILINE)
_SCAN = re.compile(r"delta_scan\('\{\{lake\}\}/([^']+)'\)")
_STATE: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, _CatalogState] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class CatalogView:
    """One view of the catalog: its name (``schema.table``), lake path and SQL template."""

    name: str
    path: str
    sql: str

    @property
    def schema(self) -> str:
        return self.name.split(".", 1)[0]


@dataclass(frozen=True)
class CatalogTable:
    """A table as the opened catalog sees it (``version``/``reader`` are None when missing)."""

    name: str
    path: str
    uri: str
    exists: bool
    version: int | None
    reader: str | None


@dataclass(frozen=True)
class _CatalogState:
    lake: Lake
    reader: str


def catalog_views(sql_text: str | None = None) -> list[CatalogView]:
    """The views of the catalog: those of ``views.sql`` plus a plain view per other table.

    Args:
        sql_text: the catalog SQL (default: the text of ``warehouse/views.sql``).

    Returns:
        One view per table of :data:`warehouse.catalog.TABLES` and of the SQL file, in file
        order, then the tables the file does not mention (``SELECT *`` over the table).

    Raises:
        ConfigError: a view block does not read exactly one lake table.
    """
    text = VIEWS_SQL.read_text() if sql_text is None else sql_text
    markers = list(_VIEW_MARKER.finditer(text))
    views: list[CatalogView] = []
    for index, marker in enumerate(markers):
        end = markers[index + 1].start() if index + 1 < len(markers) else len(text)
        block = text[marker.end() : end].strip()
        statement = "\n".join(
            line for line in block.splitlines() if not line.lstrip().startswith("--")
        ).strip()
        scans = _SCAN.findall(statement)
        if len(scans) != 1:
            raise ConfigError(
                f"views.sql: view {marker.group(1)} must read exactly one "
                f"delta_scan('{LAKE_PLACEHOLDER}/<path>'), found {len(scans)}"
            )
        views.append(CatalogView(marker.group(1), scans[0], statement.rstrip(";")))
    named = {view.name for view in views}
    for name, path in TABLES.items():
        if name not in named:
            sql = (
                f"CREATE OR REPLACE VIEW {name} AS "
                f"SELECT * FROM delta_scan('{LAKE_PLACEHOLDER}/{path}')"
            )
            views.append(CatalogView(name, path, sql))
    return views


def catalog_preamble(sql_text: str | None = None) -> str:
    """The statements of ``views.sql`` before the first view (the schemas)."""
    text = VIEWS_SQL.read_text() if sql_text is None else sql_text
    first = _VIEW_MARKER.search(text)
    return text if first is None else text[: first.start()]


def delta_extension_path() -> Path | None:
    """The ``delta.duckdb_extension`` file of the installed ``duckdb-extension-delta`` wheel.

    Returns:
        The file for the running DuckDB version, or ``None`` when the wheel is absent or built
        for another DuckDB version.
    """
    spec = importlib.util.find_spec("duckdb_extension_delta")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    candidate = root / "extensions" / f"v{duckdb.__version__}" / "delta.duckdb_extension"
    return candidate if candidate.is_file() else None


def load_delta_extension(con: duckdb.DuckDBPyConnection) -> bool:
    """Load the delta extension from the wheel into ``con``; ``False`` if it cannot load."""
    path = delta_extension_path()
    if path is None:
        return False
    try:
        con.execute(f"LOAD '{path}'")
    except duckdb.Error:
        return False
    return True


def open_catalog(
    lake: Lake,
    *,
    versions: Mapping[str, int] | None = None,
    reader: Reader = "auto",
    database: str = ":memory:",
) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB connection with the lake's views in schemas ``bronze``, ``silver``, ``gold``.

    Args:
        lake: the lake to read.
        versions: ``schema.table -> Delta version`` to pin views to older versions (time
            travel); default ``None``: every view reads the latest version.
        reader: ``"delta"`` (the delta extension), ``"arrow"`` (deltalake datasets registered
            in DuckDB) or ``"auto"`` (default: delta for a local lake when the extension loads,
            arrow otherwise).
        database: DuckDB database file (default: in memory; the views hold no data).

    Returns:
        The connection; ``main.marketlake_tables`` lists every table and whether it exists.
        Tables not materialized yet get no view.

    Raises:
        ConfigError: ``versions`` names an unknown table, or ``reader="delta"`` cannot load.
        LakeError: a pinned version does not exist.
    """
    views = catalog_views()
    known = {view.name for view in views}
    unknown = sorted(set(versions or {}) - known)
    if unknown:
        raise ConfigError(f"unknown table(s) {', '.join(unknown)}; known: {', '.join(known)}")
    con = duckdb.connect(
        database,
        config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"},
    )
    con.execute("SET TimeZone = 'UTC'")
    chosen = _choose_reader(con, lake, reader)
    _STATE[con] = _CatalogState(lake, chosen)
    con.execute(catalog_preamble())
    con.execute(
        f"CREATE OR REPLACE TABLE {CATALOG_TABLE} (name VARCHAR, path VARCHAR, uri VARCHAR, "
        '"exists" BOOLEAN, version BIGINT, reader VARCHAR)'
    )
    for view in views:
        _create_view(con, lake, view, chosen, (versions or {}).get(view.name))
    return con


def catalog_tables(con: duckdb.DuckDBPyConnection) -> list[CatalogTable]:
    """The tables of an opened catalog, in catalog order, with their version and reader."""
    rows = con.execute(
        f'SELECT name, path, uri, "exists", version, reader FROM {CATALOG_TABLE}'
    ).fetchall()
    return [CatalogTable(*row) for row in rows]


def table_as_of(
    con: duckdb.DuckDBPyConnection, name: str, *, version: int
) -> duckdb.DuckDBPyRelation:
    """The rows of table ``name`` (``schema.table``) as of Delta ``version``.

    Args:
        con: a connection from :func:`open_catalog`.
        name: the table, e.g. ``"gold.features"``.
        version: the Delta table version (see the table history, ``.history`` in the shell).

    Raises:
        ConfigError: ``con`` was not opened by :func:`open_catalog` or ``name`` is unknown.
        LakeError: the table or the version does not exist.
    """
    state = _STATE.get(con)
    if state is None:
        raise ConfigError("table_as_of needs a connection opened by warehouse.analyst.open_catalog")
    table = _catalog_entry(con, name)
    if state.reader == "delta":
        try:
            return con.sql(f"SELECT * FROM delta_scan('{_quote(table.uri)}', version := {version})")
        except duckdb.Error as exc:
            raise LakeError(_version_message(state.lake, table, version, exc)) from exc
    alias = f"__{name.replace('.', '_')}_v{version}"
    con.register(alias, _arrow_dataset(state.lake, table, version))
    return con.sql(f"SELECT * FROM {alias}")


def table_history(lake: Lake, name: str) -> list[dict[str, Any]]:
    """The Delta history of table ``name``: version, timestamp, operation, newest first.

    Raises:
        ConfigError: ``name`` is not a table of the catalog.
        LakeError: the table does not exist yet.
    """
    path = _path_of(name)
    table = open_table(lake.location(path))
    if table is None:
        raise LakeError(f"table {name} ({path}) does not exist yet: materialize it first")
    return [
        {
            "version": entry.get("version"),
            "timestamp": _utc(entry.get("timestamp")),
            "operation": entry.get("operation"),
            "source": (entry.get("userMetadata") or entry.get("marketlake.source")),
        }
        for entry in table.history()
    ]


def _choose_reader(con: duckdb.DuckDBPyConnection, lake: Lake, reader: Reader) -> str:
    remote = "://" in lake.uri and not lake.uri.startswith("file://")
    if reader == "arrow":
        return "arrow"
    if reader == "delta":
        if remote:
            raise ConfigError(
                f"the delta reader serves local lakes only ({lake.uri} needs DuckDB's httpfs "
                "extension, which is not installed): use reader='arrow' or 'auto'"
            )
        if not load_delta_extension(con):
            raise ConfigError(
                "cannot load the DuckDB delta extension: install duckdb-extension-delta=="
                f"{duckdb.__version__} (it must match duckdb) or use reader='arrow'"
            )
        return "delta"
    if not remote and load_delta_extension(con):
        return "delta"
    return "arrow"


def _create_view(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    view: CatalogView,
    reader: str,
    pinned: int | None,
) -> None:
    location = lake.location(view.path)
    delta = open_table(location)
    if delta is None:
        if pinned is not None:
            raise LakeError(f"cannot pin {view.name} to version {pinned}: it does not exist yet")
        con.execute(
            f"INSERT INTO {CATALOG_TABLE} VALUES (?, ?, ?, false, NULL, NULL)",
            [view.name, view.path, location.uri],
        )
        return
    version = delta.version() if pinned is None else pinned
    table = CatalogTable(view.name, view.path, location.uri, True, version, reader)
    if reader == "delta":
        pin = "" if pinned is None else f", version := {pinned}"
        scan = f"delta_scan('{_quote(location.uri)}'{pin})"
        try:
            con.execute(_SCAN.sub(lambda _: scan, view.sql))
            if pinned is not None:
                con.execute(f"SELECT * FROM {view.name} LIMIT 0")
        except duckdb.Error as exc:
            raise LakeError(_version_message(lake, table, version, exc)) from exc
    else:
        alias = f"__{view.name.replace('.', '_')}"
        con.register(alias, _arrow_dataset(lake, table, pinned))
        con.execute(_SCAN.sub(lambda _: alias, view.sql))
    con.execute(
        f"INSERT INTO {CATALOG_TABLE} VALUES (?, ?, ?, true, ?, ?)",
        [view.name, view.path, location.uri, version, reader],
    )


def _arrow_dataset(lake: Lake, table: CatalogTable, version: int | None) -> Any:
    location = lake.location(table.path)
    try:
        delta = DeltaTable(location.uri, version=version, storage_options=location.options())
    except Exception as exc:  # deltalake raises several unrelated classes for a bad version
        raise LakeError(_version_message(lake, table, version, exc)) from exc
    return delta.to_pyarrow_dataset()


def _catalog_entry(con: duckdb.DuckDBPyConnection, name: str) -> CatalogTable:
    for table in catalog_tables(con):
        if table.name == name:
            if not table.exists:
                raise LakeError(f"table {name} ({table.uri}) does not exist yet")
            return table
    raise ConfigError(f"unknown table {name!r}; known: {', '.join(TABLES)}")


def _path_of(name: str) -> str:
    for view in catalog_views():
        if view.name == name:
            return view.path
    raise ConfigError(f"unknown table {name!r}; known: {', '.join(TABLES)}")


def _version_message(lake: Lake, table: CatalogTable, version: int | None, exc: Exception) -> str:
    latest = open_table(lake.location(table.path))
    have = "no versions" if latest is None else f"versions 0..{latest.version()}"
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"cannot read {table.name} at version {version} ({have} exist): {reason}"


def _utc(epoch_ms: int | None) -> datetime | None:
    return None if epoch_ms is None else datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)


def _quote(text: str) -> str:
    return text.replace("'", "''")


def query_error(exc: duckdb.Error, query: str) -> DataError | LakeError:
    """The marketlake error for a failed query: LakeError for I/O, DataError otherwise."""
    first_line = query.strip().splitlines()[0] if query.strip() else query
    if isinstance(exc, duckdb.IOException):
        return LakeError(f"reading the lake failed for `{first_line}`: {exc}")
    return DataError(f"query `{first_line}` failed: {exc}")
