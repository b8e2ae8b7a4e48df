"""Many new rows into one table, as fast as the backend takes them.

SQLAlchemy's executemany builds and processes every row's parameters in Python:
most of a 100,000-patient import's database time, and of a fan-out's. Here each
value still goes through its column type's own bind processor, so what is stored
is exactly what ``insert(table)`` stores, but PostgreSQL takes the rows by COPY
and SQLite by one executemany of plain tuples. Python-side scalar column defaults
apply; a column whose default is computed must be given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.exc import DBAPIError

from campaigns.errors import InputError

__all__ = ["insert_rows"]


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
    if both := set(names) & set(same or {}):
        raise InputError(f"{sorted(both)} given both per row and as shared values")
    dialect = conn.dialect
    shared = {**(same or {}), **_scalar_defaults(table, [*names, *(same or {})])}
    columns = [*names, *shared]
    processors: list[Callable[[Any], Any] | None] = [
        table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns
    ]

    fixed = tuple(_converted(shared.values(), processors[len(names) :]))
    per_row = processors[: len(names)]

    def values(row: Mapping[str, Any]) -> tuple[Any, ...]:
        if len(row) != len(names):
            raise InputError(f"rows for {table.name} must all have the columns {names}")
        return (*_converted((row[name] for name in names), per_row), *fixed)

    quote = dialect.identifier_preparer.quote
    column_list = ", ".join(quote(name) for name in columns)
    if dialect.name == "postgresql":
        statement = f"COPY {quote(table.name)} ({column_list}) FROM STDIN"
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            with cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(values(row))
        except dialect.loaded_dbapi.Error as e:
            # As SQLAlchemy raises it for any other statement: IntegrityError and so on.
            raise DBAPIError.instance(statement, None, e, dialect.loaded_dbapi.Error) from e
        finally:
            cursor.close()
        return
    placeholders = ", ".join("?" for _ in columns)
    conn.exec_driver_sql(
        f"INSERT INTO {quote(table.name)} ({column_list}) VALUES ({placeholders})",  # noqa: S608
        [values(row) for row in rows],
    )


def _converted(
    values: Iterable[Any], processors: Iterable[Callable[[Any], Any] | None]
) -> Iterator[Any]:
    return (
        value if process is None else process(value)
        for value, process in zip(values, processors, strict=True)
    )


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
