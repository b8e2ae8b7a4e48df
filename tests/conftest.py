"""Shared fixtures: settings, databases, Redis and services, on every backend under test.

A test that asks for ``svc``, ``settings`` or ``database_url`` runs once per backend
in TEST_DATABASES (default ``sqlite,postgresql``), its id ending in ``[sqlite]`` or
``[postgresql]``; tests without a database run once. PostgreSQL and redis-server are
private servers started once per session (tests.support.services): a missing one
skips its tests locally and fails them under CI=true.

``svc`` is the one way a test gets Services (but for the stub-based tests of the
send loop, tests/sending and test_pending, on in-memory ports and a clock they set).
A module that needs more than a database (Redis, a webhook secret, the workers'
environment) overrides the ``settings_overrides`` fixture; one whose database other
connections, threads or processes must see gives ``database_url`` there (on SQLite,
a file, not memory).
One that queues work for workers overrides ``dispatcher`` (integration: Celery's).
One test overrides it by direct parametrization:
``@pytest.mark.parametrize("settings_overrides", [{"public_url": "https://..."}])``.
Patients, campaigns, runs and deliveries come from tests.support.factories.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
import redis
from psycopg import sql

from campaigns.domain.ports import Dispatcher
from campaigns.services import Services
from campaigns.settings import Settings
from campaigns.store.db import Database
from tests.support.services import PostgresServer, RedisServer
from tests.support.settings import CLINIC, ROOT, SQLITE_IN_MEMORY, make_settings

if TYPE_CHECKING:
    from tests.support.twilio_server import TwilioServer

__all__ = ["CLINIC", "ROOT", "backends", "make_settings"]

BACKENDS = ("sqlite", "postgresql")
_TEST_DATABASE = "meridian_unit"


def backends() -> list[str]:
    """The database backends to test on: TEST_DATABASES, comma-separated."""
    chosen = [
        b.strip()
        for b in os.environ.get("TEST_DATABASES", ",".join(BACKENDS)).split(",")
        if b.strip()
    ]
    unknown = sorted(set(chosen) - set(BACKENDS))
    if unknown:
        raise pytest.UsageError(
            f"TEST_DATABASES: unknown backend(s) {', '.join(unknown)}; "
            f"choose from {', '.join(BACKENDS)}"
        )
    return chosen


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The session's redis-server. Its users empty it before use; a test that kills or
    restarts a server starts its own (``with RedisServer() as server``)."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of the session's redis-server, emptied for this test."""
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture
def twilio() -> Iterator[TwilioServer]:
    """A Twilio-compatible server of this test's own (tests.support.twilio_server)."""
    from tests.support.twilio_server import TwilioServer  # the twilio package: only if used

    server = TwilioServer().start()
    yield server
    server.stop()


class PostgresTestDatabase:
    """The session's PostgreSQL database for unit tests: migrated once, emptied per test.

    Emptying it (TRUNCATE, ids restarted) takes about 20 ms; a new database per test,
    even copied from a migrated template, took 30 to 200 ms (it copies files, so it
    waits for the disk) and a migrated empty one about 190.
    """

    def __init__(self, server: PostgresServer, name: str) -> None:
        self.url = server.create_database(name)
        database = Database(self.url)
        try:
            database.upgrade()
        finally:
            database.dispose()
        self._conn = psycopg.connect(self.url.replace("postgresql+psycopg:", "postgresql:", 1))
        tables = self._conn.execute(
            "SELECT tablename FROM pg_tables"
            " WHERE schemaname = 'public' AND tablename <> 'alembic_version' ORDER BY tablename"
        ).fetchall()
        self._truncate = sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
            sql.SQL(", ").join(sql.Identifier(t) for (t,) in tables)
        )
        self._conn.rollback()

    def empty(self) -> None:
        """Remove every row and restart every id, as in a database just migrated."""
        with self._conn.transaction():
            # Fail, not hang, if a session some test left in a transaction holds a lock.
            self._conn.execute("SET LOCAL lock_timeout = '10s'")
            self._conn.execute(self._truncate)

    def close(self) -> None:
        self._conn.close()


@pytest.fixture(scope="session")
def postgres_test_database(postgres_server: PostgresServer) -> Iterator[PostgresTestDatabase]:
    database = PostgresTestDatabase(postgres_server, _TEST_DATABASE)
    yield database
    database.close()


@pytest.fixture(params=backends())
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend this test runs on; parametrizes every test that uses it."""
    name: str = request.param
    return name


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A database with no rows for this test: a new SQLite file, or PostgreSQL's.

    On PostgreSQL it is the session's one database, already migrated and emptied
    now (PostgresTestDatabase); migrating it again, as ``svc`` does, changes nothing.
    """
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'meridian.db'}"
    database: PostgresTestDatabase = request.getfixturevalue("postgres_test_database")
    database.empty()
    return database.url


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """What a module's Services need besides the defaults: override it in the module
    (or a conftest), e.g. ``{"database_url": database_url, "redis_url": ...}``."""
    return {}


@pytest.fixture
def settings(
    tmp_path: Path, backend: str, database_url: str, settings_overrides: dict[str, object]
) -> Settings:
    """Settings on this test's database (on SQLite, one in memory unless the overrides
    name the file), with the module's overrides."""
    values: dict[str, object] = {
        "database_url": SQLITE_IN_MEMORY if backend == "sqlite" else database_url,
        **settings_overrides,
    }
    return make_settings(tmp_path, **values)


@pytest.fixture
def dispatcher() -> Dispatcher | None:
    """How ``svc`` hands work to the workers: none here (the integration tests' conftest
    plugs in Celery's, as the entry points do; tests/sending runs on in-memory stubs)."""
    return None


@pytest.fixture
def svc(settings: Settings, dispatcher: Dispatcher | None) -> Iterator[Services]:
    """Services on this test's migrated, empty database; closed after the test."""
    services = Services(settings, dispatcher)
    services.db.upgrade()
    yield services
    services.close()
