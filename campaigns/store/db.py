"""Engines, transactions and migrations for SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.pool import StaticPool

from campaigns.errors import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic (with Mako and Pygments, about 8 MB) is imported where a migration or a
# revision check needs it, not by every worker process that only reads and writes rows.

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the web app read while workers write; busy_timeout makes concurrent
    # writers from several worker processes wait instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


# How long a writer waits for SQLite's one write lock, and how often it asks meanwhile.
WRITE_LOCK_WAIT_S = 60.0
_WRITE_LOCK_POLL_S = (0.0002, 0.002)  # first, and at most


def _begin_immediate(conn: Connection) -> None:
    """BEGIN IMMEDIATE, asked again every fraction of a millisecond while another
    connection writes. SQLite's own busy handler sleeps 1, 2, 5 ... then 100 ms between
    tries: a lock held for a few milliseconds at a time by several processes (a fan-out's
    chunks, the senders' claims and outcomes) went unused while its waiters slept, and
    a run sending while it was written took 56 s instead of 7."""
    conn.exec_driver_sql("PRAGMA busy_timeout=0")
    try:
        deadline = time.monotonic() + WRITE_LOCK_WAIT_S
        pause = _WRITE_LOCK_POLL_S[0]
        while True:
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                return
            except OperationalError as exc:
                locked = getattr(exc.orig, "sqlite_errorname", "") == "SQLITE_BUSY"
                if not locked or time.monotonic() >= deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, _WRITE_LOCK_POLL_S[1])
    finally:
        conn.exec_driver_sql(f"PRAGMA busy_timeout={int(WRITE_LOCK_WAIT_S * 1000)}")


# Statements' values are patients' names, emails and phones: an error's text never
# carries them (hide_parameters), and campaigns.logs never writes an error's text.


def make_engine(url: str) -> Engine:
    """An engine for ``url``; creates the folder of a SQLite file if missing."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ":memory:"
        if database == ":memory:":
            engine = create_engine(
                url,
                poolclass=StaticPool,
                connect_args={"check_same_thread": False},
                hide_parameters=True,
            )
        else:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            # The driver's own transaction handling is off so that a write
            # transaction can BEGIN IMMEDIATE: it takes the write lock up front, and
            # two workers never both read-then-upgrade into SQLITE_BUSY_SNAPSHOT.
            engine = create_engine(
                url,
                connect_args={"timeout": 60, "isolation_level": None},
                hide_parameters=True,
            )

            @event.listens_for(engine, "begin")
            def _begin(conn: Connection) -> None:
                if conn.get_execution_options().get("meridian_write", False):
                    _begin_immediate(conn)
                else:
                    conn.exec_driver_sql("BEGIN")

        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(url, pool_size=5, max_overflow=5, hide_parameters=True)
    event.listen(engine, "checkin", _checked_in)
    event.listen(engine, "checkout", _ping_if_idle)
    return engine


# A pooled PostgreSQL connection is pinged before use only when it has sat idle this
# long: a busy worker checks connections out a dozen times per slice, and a ping on
# every checkout (SQLAlchemy's pool_pre_ping) was a round trip each time. One idle
# for longer (the server restarted meanwhile, say) is pinged, and replaced if dead.
PING_AFTER_IDLE_S = 1.0


def _checked_in(_dbapi_connection: Any, record: Any) -> None:
    record.info["meridian_idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    since = record.info.get("meridian_idle_since")
    if since is None or time.monotonic() - since < PING_AFTER_IDLE_S:
        return
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        if not dbapi_connection.autocommit:
            dbapi_connection.rollback()
    except Exception as exc:
        # The pool discards this connection and checks out another (SQLAlchemy's
        # documented pessimistic disconnect handling).
        raise DisconnectionError("the pooled connection is gone") from exc


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (Alembic), on this engine's database."""
    from alembic import command

    with _migrating(engine) as config:
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema back to ``revision`` (Alembic), on this engine's database."""
    from alembic import command

    with _migrating(engine) as config:
        command.downgrade(config, revision)


@contextmanager
def _migrating(engine: Engine) -> Iterator[Config]:
    """An Alembic config on one transaction of ``engine``.

    On SQLite, Alembic's batch mode changes a constraint by copying the table and
    dropping the old one, which foreign keys from other tables' rows (runs, copy
    versions) refuse. The keys are off for the migration (SQLite ignores the pragma
    inside a transaction, so it is set on the driver's connection before it begins),
    checked with foreign_key_check once it is done, and on again after.
    """
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    sqlite = engine.url.get_backend_name() == "sqlite"
    with engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        if sqlite and raw is not None:
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                config.attributes["connection"] = connection
                yield config
                if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first():
                    raise ConfigError("the migration left rows whose foreign keys point nowhere")
        finally:
            if sqlite and raw is not None:
                raw.execute("PRAGMA foreign_keys=ON")


class Database:
    """One engine and the two ways to use it: a write transaction, or a read."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self._reads = (
            self.engine
            if self.engine.dialect.name == "sqlite"
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )

    @property
    def backend(self) -> str:
        return self.engine.url.get_backend_name()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction: committed at the end, rolled back on error."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(meridian_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection for reads. On PostgreSQL each statement is its own transaction
        (autocommit): what READ COMMITTED gives a statement anyway, without a BEGIN and
        a ROLLBACK round trip around every read. On SQLite the block is one read
        transaction, one snapshot."""
        with self._reads.connect() as conn:
            yield conn

    def upgrade(self) -> None:
        upgrade(self.engine)

    def revisions(self) -> tuple[str | None, str | None]:
        """(the database's revision, or None if it has none; the code's head)."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
        with self.engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
        return current, head

    def require_schema(self) -> None:
        """Refuse, with what to run, a database not migrated to this code's head."""
        current, head = self.revisions()
        if current == head:
            return
        where = f"{self.backend} database {self.engine.url.render_as_string(hide_password=True)}"
        if current is None:
            raise ConfigError(f"the {where} has no tables yet: run `meridian db upgrade` first")
        raise ConfigError(
            f"the {where} is at revision {current}, this code needs {head}: run "
            "`meridian db upgrade` first"
        )

    def dispose(self) -> None:
        self.engine.dispose()
