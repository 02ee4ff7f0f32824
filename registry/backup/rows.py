"""The logical, database-neutral form of the rows: one JSON array per row, types kept by tags.

Plain JSON carries strings, integers, finite floats, booleans and NULL. Every other value is a one-key object:
``{"$datetime": ISO 8601}``, ``{"$date": …}``, ``{"$time": …}``, ``{"$decimal": "…"}``, ``{"$bytes": base64}``,
``{"$float": "nan" | "inf" | "-inf"}``, and a JSON column's document as ``{"$json": value}`` (so that SQL NULL and
a JSON ``null`` stay apart). The same rows restore into SQLite or PostgreSQL.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

import registry.models  # noqa: F401  (every table on the metadata)
from registry.library.search import migration_only


class RowFormatError(ValueError):
    """A value that the format cannot carry, or a tag it does not know."""


def is_json_column(column_type: sa.types.TypeEngine) -> bool:
    return isinstance(column_type, sa.JSON)


def encode(value: object) -> object:
    """One column's value in the dump's JSON (a JSON column's document is tagged by the caller, which alone knows
    whether a None was SQL NULL or a JSON null)."""
    if value is None:
        return None
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, dt.time):
        return {"$time": value.isoformat()}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    raise RowFormatError(f"a value of type {type(value).__name__} cannot be backed up")


_DECODERS = {
    "$datetime": dt.datetime.fromisoformat,
    "$date": dt.date.fromisoformat,
    "$time": dt.time.fromisoformat,
    "$decimal": Decimal,
    "$bytes": lambda text: base64.b64decode(text, validate=True),
    "$float": float,
}


def decode(value: object) -> object:
    """The Python value of one encoded column (a JSON document as itself; JSON ``null`` as ``sa.JSON.NULL``)."""
    if not isinstance(value, dict):
        return value
    if len(value) != 1:
        raise RowFormatError(f"not a tagged value: {str(value)[:80]}")
    ((tag, inner),) = value.items()
    if tag == "$json":
        return sa.JSON.NULL if inner is None else inner
    try:
        return _DECODERS[tag](inner)
    except KeyError:
        raise RowFormatError(f"unknown value tag {tag!r}") from None
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise RowFormatError(f"a bad {tag} value: {exc}") from None


def dump_line(values: list) -> bytes:
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8") + b"\n"


# --- which tables and columns --------------------------------------------------------------------------------------

METADATA = SQLModel.metadata


def tables_in(connection: sa.Connection) -> list[tuple[sa.Table, list[str]]]:
    """Every table of the models that the database has, parents before children, with the columns the database
    has (so an older schema revision is dumped as it is). The full-text index (SQLite's FTS5 tables, PostgreSQL's
    generated tsvector column) is left out: the database rebuilds it from the rows."""
    inspector = sa.inspect(connection)
    present = set(inspector.get_table_names())
    out = []
    for table in METADATA.sorted_tables:
        if table.name not in present or migration_only(table.name, "table"):
            continue
        existing = {c["name"] for c in inspector.get_columns(table.name)}
        columns = [c.name for c in table.columns if c.name in existing and not migration_only(c.name, "column")]
        out.append((table, columns))
    return out


def insert_table(connection: sa.Connection, name: str, columns: list[str]) -> sa.Table:
    """A table object to insert ``columns`` of ``name`` with: the model's column types where the model has them
    (so UTC timestamps and JSON are written as the app writes them), the database's own otherwise; JSON columns
    write None as SQL NULL (and ``sa.JSON.NULL`` as a JSON null)."""
    model = METADATA.tables.get(name)
    reflected = None
    out = []
    for column in columns:
        if model is not None and column in model.columns:
            column_type = model.columns[column].type
        else:
            if reflected is None:
                reflected = {c["name"]: c["type"] for c in sa.inspect(connection).get_columns(name)}
            if column not in reflected:
                raise RowFormatError(f"the database's table {name} has no column {column}")
            column_type = reflected[column]
        if is_json_column(column_type):
            column_type = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
        out.append(sa.Column(column, column_type))
    return sa.Table(name, sa.MetaData(), *out)


def primary_key_order(table: sa.Table, columns: list[str]) -> list[sa.ColumnElement]:
    keys = [c for c in table.primary_key.columns if c.name in columns]
    return keys or [table.columns[c] for c in columns]


# --- engines whose transactions are real transactions ----------------------------------------------------------------


def transactional_engine(url: str) -> Engine:
    """An engine like registry.db.make_engine's, but on SQLite every transaction is an explicit BEGIN: the
    sqlite3 module would otherwise run SELECTs and DDL outside any transaction, so a dump would not be one
    snapshot and a failed restore would leave tables behind (SQLAlchemy's documented pysqlite recipe)."""
    from registry.db import make_engine

    if not url.startswith("sqlite"):
        return make_engine(url)
    engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # the driver issues no BEGIN/COMMIT of its own
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection):
        connection.exec_driver_sql("BEGIN")

    return engine


def json_bytes(document: object) -> bytes:
    """One JSON document on one line."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
