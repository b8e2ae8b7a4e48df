"""Migration 0012 on SQLite and PostgreSQL: the consent evidence's foreign key goes on
PostgreSQL, checked once per statement by a trigger instead, and comes back on the
way down, evidence that names no patient redacted first; and a data-only restore of
a migrated database still loads its evidence."""

from __future__ import annotations

import subprocess
import uuid
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


def _database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Database:
    if backend == "sqlite":
        return Database(f"sqlite:///{tmp_path / 'm0012.db'}")
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return Database(server.create_database(f"m0012_{uuid.uuid4().hex[:12]}"))


@pytest.fixture
def database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Database:
    return _database(backend, tmp_path, request)


def _keys(database: Database) -> list[str]:
    return [key["referred_table"] for key in inspect(database.engine).get_foreign_keys("consents")]


def _evidence(database: Database) -> list[tuple[object, object]]:
    with database.connect() as conn:
        rows = conn.execute(select(consents.c.patient_id, consents.c.address).order_by("id"))
        return [tuple(r) for r in rows]


def test_the_key_goes_down_with_orphans_redacted_and_comes_up_again(
    database: Database, backend: str
) -> None:
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
    orphan = (None, None) if backend == "postgresql" else (2, "+16175550100")
    assert _evidence(database) == [(1, "+16175550100"), orphan]

    database.upgrade()
    assert _keys(database) == ([] if backend == "postgresql" else ["patients"])
    with pytest.raises(IntegrityError), database.begin() as conn:
        conn.execute(_EVIDENCE, {"id": 99})
    database.dispose()


def test_a_data_only_restore_loads_the_evidence(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """pg_dump --data-only writes the rows of a migrated database for one migrated the
    same way; its script empties search_path, which the trigger must not need."""
    if backend != "postgresql":
        pytest.skip("pg_dump is PostgreSQL's")
    source, target = (_database(backend, tmp_path, request) for _ in range(2))
    for database in (source, target):
        database.upgrade()
    with source.begin() as conn:
        conn.execute(_PATIENT, {"id": 1, "ext": "P1"})
        conn.execute(_EVIDENCE, {"id": 1})

    def dsn(database: Database) -> str:
        return database.engine.url.render_as_string(hide_password=False).replace(
            "postgresql+psycopg://", "postgresql://", 1
        )

    dump = subprocess.run(
        [require_binary("pg_dump"), "--data-only", "--exclude-table=alembic_version", dsn(source)],
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
    for database in (source, target):
        database.dispose()
