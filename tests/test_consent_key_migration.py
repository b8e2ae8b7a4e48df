"""Migration 0012 on SQLite and PostgreSQL: the consent evidence's foreign key goes on
PostgreSQL, checked once per statement by a trigger instead, and comes back on the
way down, evidence that names no patient redacted first; and a data-only restore of
a migrated database, patients first, still loads its evidence."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from campaigns.store.db import Database, downgrade
from campaigns.store.tables import consents
from tests.support.services import PostgresServer, require_binary

_PATIENT = text(
    "INSERT INTO patients (id, external_id, tags, created_at, updated_at)"
    " VALUES (:id, :ext, ';', '2024-03-01', '2024-03-01')"
)
_EVIDENCE = text(
    "INSERT INTO consents (patient_id, channel, granted, address, at, source, recorded_by,"
    " recorded_at) VALUES (:id, 'sms', true, '+16175550100', '2024-03-01', 'import', 'test',"
    " '2024-03-01')"
)


@pytest.fixture
def databases(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[], Database]]:
    """New empty databases on this test's backend, disposed of (and on PostgreSQL
    dropped) when it ends, passed or not."""
    made: list[tuple[Database, str]] = []
    server: PostgresServer | None = (
        request.getfixturevalue("postgres_server") if backend == "postgresql" else None
    )

    def make() -> Database:
        name = f"m0012_{uuid.uuid4().hex[:12]}"
        if server is None:
            database = Database(f"sqlite:///{tmp_path / name}.db")
        else:
            database = Database(server.create_database(name))
        made.append((database, name))
        return database

    yield make
    for database, name in made:
        database.dispose()
        if server is not None:
            server.drop_database(name)


def _keys(database: Database) -> list[str]:
    return [key["referred_table"] for key in inspect(database.engine).get_foreign_keys("consents")]


def _evidence(database: Database) -> list[tuple[object, object]]:
    with database.connect() as conn:
        rows = conn.execute(select(consents.c.patient_id, consents.c.address).order_by("id"))
        return [tuple(r) for r in rows]


def test_the_key_goes_down_with_orphans_redacted_and_comes_up_again(
    databases: Callable[[], Database], backend: str
) -> None:
    database = databases()
    database.upgrade()
    assert _keys(database) == ([] if backend == "postgresql" else ["patients"])
    with database.begin() as conn:
        for pid in (1, 2):
            conn.execute(_PATIENT, {"id": pid, "ext": f"P{pid}"})
            conn.execute(_EVIDENCE, {"id": pid})
    if backend == "postgresql":
        # A TRUNCATE fires no trigger: evidence can be left naming no patient.
        with database.begin() as conn:
            conn.execute(text("TRUNCATE patients CASCADE"))
            conn.execute(_PATIENT, {"id": 1, "ext": "P1"})

    downgrade(database.engine, "0011")
    assert _keys(database) == ["patients"]
    second = (None, None) if backend == "postgresql" else (2, "+16175550100")  # redacted
    assert _evidence(database) == [(1, "+16175550100"), second]

    database.upgrade()
    assert _keys(database) == ([] if backend == "postgresql" else ["patients"])
    with pytest.raises(IntegrityError), database.begin() as conn:
        conn.execute(_EVIDENCE, {"id": 99})


def test_a_data_only_restore_loads_the_evidence(
    databases: Callable[[], Database], backend: str
) -> None:
    """pg_dump --data-only writes rows for a database migrated the same way. Its
    script empties search_path, which the trigger must not need; and with no foreign
    key to order them, the patients are dumped and loaded before their evidence."""
    if backend != "postgresql":
        pytest.skip("pg_dump is PostgreSQL's")
    source, target = databases(), databases()
    for database in (source, target):
        database.upgrade()
    with source.begin() as conn:
        conn.execute(_PATIENT, {"id": 1, "ext": "P1"})
        conn.execute(_EVIDENCE, {"id": 1})

    def dsn(database: Database) -> str:
        return database.engine.url.render_as_string(hide_password=False).replace(
            "postgresql+psycopg://", "postgresql://", 1
        )

    for table in ("patients", "consents"):
        dump = subprocess.run(
            [require_binary("pg_dump"), "--data-only", f"--table={table}", dsn(source)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        restored = subprocess.run(
            [require_binary("psql"), "-v", "ON_ERROR_STOP=1", "-q", dsn(target)],
            input=dump,
            capture_output=True,
            text=True,
        )
        assert restored.returncode == 0, restored.stderr
    assert _evidence(target) == [(1, "+16175550100")]
