"""Migration 0006 on SQLite and PostgreSQL: campaigns saved before it keep their rows,
a cancelled campaign's name may then be taken again, and going back restores the
old unique name when no two rows share one."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from campaigns.store.db import Database, downgrade, upgrade

_INSERT = text(
    "INSERT INTO campaigns (name, definition, status, findings, created_at, updated_at)"
    " VALUES (:name, '{}', :status, '[]', '2024-03-01', '2024-03-01')"
)


@pytest.fixture
def database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Database:
    if backend == "sqlite":
        return Database(f"sqlite:///{tmp_path / 'old.db'}")
    server = request.getfixturevalue("postgres_server")
    return Database(server.create_database(f"m0006_{uuid.uuid4().hex[:12]}"))


def test_a_cancelled_campaigns_name_is_free_after_0006_and_held_again_after_going_back(
    database: Database,
) -> None:
    upgrade(database.engine, "0005")
    with database.begin() as conn:
        conn.execute(_INSERT, {"name": "flu", "status": "cancelled"})
        conn.execute(_INSERT, {"name": "spring", "status": "draft"})
        # a run points at the cancelled campaign: SQLite's copy of the table in batch
        # mode must not trip over it, and the run must still point at its campaign
        conn.execute(
            text(
                "INSERT INTO campaign_runs (campaign_id, occurrence, trigger, status, planned,"
                " started_at) SELECT id, '2025-10-15', 'schedule', 'finished', 0, '2025-10-15'"
                " FROM campaigns WHERE name = 'flu'"
            )
        )
    with pytest.raises(IntegrityError), database.begin() as conn:
        conn.execute(_INSERT, {"name": "flu", "status": "draft"})  # burnt before 0006

    upgrade(database.engine, "0006")
    with database.begin() as conn:
        conn.execute(_INSERT, {"name": "flu", "status": "draft"})
    with pytest.raises(IntegrityError), database.begin() as conn:
        conn.execute(_INSERT, {"name": "spring", "status": "scheduled"})  # held by a draft
    with database.connect() as conn:
        rows = conn.execute(text("SELECT name, status FROM campaigns ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [
        ("flu", "cancelled"),
        ("spring", "draft"),
        ("flu", "draft"),
    ]
    with database.connect() as conn:
        run_of = conn.execute(
            text("SELECT c.status FROM campaign_runs r JOIN campaigns c ON c.id = r.campaign_id")
        ).scalar_one()
    assert run_of == "cancelled"

    with database.begin() as conn:
        conn.execute(text("DELETE FROM campaign_runs"))
        conn.execute(text("DELETE FROM campaigns WHERE status = 'cancelled'"))
    downgrade(database.engine, "0005")
    with pytest.raises(IntegrityError), database.begin() as conn:
        conn.execute(_INSERT, {"name": "flu", "status": "cancelled"})
    database.dispose()
