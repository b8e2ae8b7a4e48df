"""Many new rows into one table, as fast as the backend takes them.

SQLAlchemy's executemany builds and processes every row's parameters in Python:
most of a 100,000-patient import's database time, and of a fan-out's. Here each
value still goes through its column type's own bind processor, so what is stored
is exactly what ``insert(table)`` stores, but PostgreSQL takes the rows by COPY
and SQLite by one executemany of plain tuples. Python-side scalar column defaults
apply; a column whose default is computed must be given. Rows come as mappings
(``insert_rows``) or as tuples in a given column order (``insert_tuples``: no dict per
row, and only the columns whose type converts in Python cost anything per value).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    any_,
    bindparam,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError

from campaigns.errors import InputError

__all__ = ["insert_rows", "insert_tuples", "one_of"]


def insert_rows(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    same: Mapping[str, Any] | None = None,
) -> None:
    """Insert ``rows`` (all with the same keys) in ``conn``'s transaction.

    ``same`` holds values every row shares (a timestamp, a run id): converted once.
    """
    if not rows:
        return
    names = list(rows[0])
    get, single = itemgetter(*names), len(names) == 1

    def values(row: Mapping[str, Any]) -> tuple[Any, ...]:
        if len(row) != len(names):
            raise InputError(f"rows for {table.name} must all have the columns {names}")
        found = get(row)
        return (found,) if single else tuple(found)

    insert_tuples(conn, table, names, [values(row) for row in rows], same)


def insert_tuples(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    same: Mapping[str, Any] | None = None,
) -> None:
    """Insert ``rows``, each a tuple of the values of ``columns`` in that order, in
    ``conn``'s transaction. ``same`` as for :func:`insert_rows`."""
    if not rows:
        return
    names = list(columns)
    if both := set(names) & set(same or {}):
        raise InputError(f"{sorted(both)} given both per row and as shared values")
    dialect = conn.dialect
    shared = {**(same or {}), **_scalar_defaults(table, [*names, *(same or {})])}
    every = [*names, *shared]
    processors: list[Callable[[Any], Any] | None] = [
        table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in every
    ]
    fixed = tuple(
        value if process is None else process(value)
        for value, process in zip(shared.values(), processors[len(names) :], strict=True)
    )
    # Only the columns whose type converts a value in Python cost anything per row.
    convert = [
        (i, _remembered(process) if _is_instant(table.c[names[i]]) else process)
        for i, process in enumerate(processors[: len(names)])
        if process
    ]

    def values(row: tuple[Any, ...]) -> tuple[Any, ...]:
        if len(row) != len(names):
            raise InputError(f"rows for {table.name} must all have the columns {names}")
        if not convert:
            return row + fixed
        out = list(row)
        for i, process in convert:
            out[i] = process(out[i])
        return (*out, *fixed)  # SQLAlchemy's executemany takes tuples, not lists

    quote = dialect.identifier_preparer.quote
    column_list = ", ".join(quote(name) for name in every)
    if dialect.name == "postgresql":
        statement = f"COPY {quote(table.name)} ({column_list}) FROM STDIN"
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            with cursor.copy(statement) as copy:
                write = copy.write_row
                for row in rows:
                    write(values(row))
        except dialect.loaded_dbapi.Error as e:
            # As SQLAlchemy raises it for any other statement: IntegrityError and so on.
            raise DBAPIError.instance(statement, None, e, dialect.loaded_dbapi.Error) from e
        finally:
            cursor.close()
        return
    placeholders = ", ".join("?" for _ in every)
    conn.exec_driver_sql(
        f"INSERT INTO {quote(table.name)} ({column_list}) VALUES ({placeholders})",  # noqa: S608
        [values(row) for row in rows],
    )


def one_of(
    dialect: str, column: ColumnElement[Any], values: Iterable[Any], name: str | None = None
) -> ColumnElement[bool]:
    """``column`` is one of ``values``, passed as ONE parameter however many they are:
    an array of the column's type on PostgreSQL, a JSON array read by ``json_each`` on
    SQLite. Each value is still found by the column's index. An IN list of a thousand
    values cost more to bind and plan than the look-up it makes (psycopg parses a
    statement of hundreds of placeholders anew each time: a tenth of a sender's CPU),
    and SQLite caps a statement's parameters. ``dialect`` is ``conn.dialect.name``."""
    listed = list(values)
    if dialect == "postgresql":
        return column == any_(bindparam(name, listed, type_=ARRAY(column.type)))
    each = func.json_each(bindparam(name, json.dumps(listed))).table_valued("value")
    return column.in_(select(each.c.value))


def _scalar_defaults(table: Table, given: Sequence[str]) -> dict[str, Any]:
    """The Python-side scalar defaults of the columns not in ``given``."""
    defaults: dict[str, Any] = {}
    for column in table.columns:
        if column.name in given or column.default is None:
            continue
        default = column.default
        if not getattr(default, "is_scalar", False):
            raise InputError(f"{table.name}.{column.name} has a computed default; give its value")
        defaults[column.name] = default.arg  # type: ignore[attr-defined]
    return defaults


def _is_instant(column: ColumnElement[Any]) -> bool:
    kind = column.type
    try:
        return getattr(kind, "impl_instance", kind).python_type is datetime
    except NotImplementedError:  # a type with no Python type (NullType, some JSON)
        return False


def _remembered(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``process`` answering each distinct value once: a fan-out chunk's rows share a
    few dozen due instants, and converting each row's two (checked, made naive UTC,
    formatted for SQLite) was a tenth of a SQLite fan-out's CPU."""
    seen: dict[Any, Any] = {}

    def once(value: Any) -> Any:
        try:
            return seen[value]
        except KeyError:
            seen[value] = converted = process(value)
            return converted

    return once
