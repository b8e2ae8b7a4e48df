"""What every table of the ledger is built with: the metadata and its naming
convention, the id type, and UTC timestamps (campaigns.store.tables and
campaigns.store.tables_results hold the tables)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Column, DateTime, Dialect, Integer, MetaData
from sqlalchemy.types import TypeDecorator

from campaigns.errors import InputError

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, whatever the backend keeps.

    SQLite has no time zones, so every instant is stored as naive UTC and handed
    back aware; a naive datetime coming in is a bug and is refused.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise InputError("naive datetime given to the ledger; pass an aware UTC instant")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def ts(name: str, nullable: bool = True) -> Column[datetime]:
    return Column(name, UtcDateTime(), nullable=nullable)
