"""Named SQL for the console's staff users."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from campaigns.domain.ports import Clock, utc_now
from campaigns.errors import InputError
from campaigns.store.db import Database
from campaigns.store.tables import staff_users


class StaffRepository:
    def __init__(self, db: Database, clock: Clock = utc_now) -> None:
        self.db = db
        self.clock = clock

    def add(self, username: str, password_hash: str, role: str) -> int:
        """Add an active user; InputError if the username is taken."""
        with self.db.begin() as conn:
            try:
                return int(
                    conn.execute(
                        insert(staff_users)
                        .values(
                            username=username,
                            password_hash=password_hash,
                            role=role,
                            active=True,
                            created_at=self.clock(),
                        )
                        .returning(staff_users.c.id)
                    ).scalar_one()
                )
            except IntegrityError as exc:
                raise InputError(
                    f"staff user {username!r} already exists; pick another name"
                ) from exc

    def get(self, username: str) -> dict[str, Any] | None:
        with self.db.connect() as conn:
            row = (
                conn.execute(select(staff_users).where(staff_users.c.username == username))
                .mappings()
                .first()
            )
        return None if row is None else dict(row)
