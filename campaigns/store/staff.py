"""Named SQL for the console's staff users."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from campaigns.domain.ports import Clock, utc_now
from campaigns.errors import InputError
from campaigns.store.db import Database
from campaigns.store.tables import staff_sessions, staff_users


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

    def all(self) -> list[dict[str, Any]]:
        """Every staff user (no password hashes), by username."""
        columns = [staff_users.c[c] for c in ("username", "role", "active", "created_at")]
        with self.db.connect() as conn:
            rows = conn.execute(select(*columns).order_by(staff_users.c.username)).mappings()
            return [dict(r) for r in rows]

    def change(self, username: str, **values: Any) -> bool:
        """Set role, active or password_hash; False if there is no such user. Disabling
        a user or changing the password ends every session the user has."""
        with self.db.begin() as conn:
            done = conn.execute(
                update(staff_users).where(staff_users.c.username == username).values(**values)
            ).rowcount
            if done and (values.get("active") is False or "password_hash" in values):
                conn.execute(delete(staff_sessions).where(staff_sessions.c.username == username))
        return bool(done)

    def set_contact(self, username: str, phone: str | None, email: str | None) -> bool:
        """Set the user's own phone and email (None clears one); False if no such user."""
        with self.db.begin() as conn:
            done = conn.execute(
                update(staff_users)
                .where(staff_users.c.username == username)
                .values(phone=phone, email=email)
            ).rowcount
        return bool(done)

    # sessions ----------------------------------------------------------------------------

    def open_session(self, session_id: str, username: str) -> None:
        now = self.clock()
        with self.db.begin() as conn:
            conn.execute(
                insert(staff_sessions).values(
                    id=session_id, username=username, created_at=now, seen_at=now
                )
            )

    def session(self, session_id: str) -> dict[str, Any] | None:
        with self.db.connect() as conn:
            row = (
                conn.execute(select(staff_sessions).where(staff_sessions.c.id == session_id))
                .mappings()
                .first()
            )
        return None if row is None else dict(row)

    def touch_session(self, session_id: str) -> None:
        with self.db.begin() as conn:
            conn.execute(
                update(staff_sessions)
                .where(staff_sessions.c.id == session_id)
                .values(seen_at=self.clock())
            )

    def end_sessions(self, *, session_id: str | None = None, username: str | None = None) -> int:
        """End one session, or every session of a user; how many ended."""
        cond = (
            staff_sessions.c.id == session_id
            if session_id is not None
            else staff_sessions.c.username == username
        )
        with self.db.begin() as conn:
            return int(conn.execute(delete(staff_sessions).where(cond)).rowcount)

    def end_stale_sessions(self, idle: timedelta, lifetime: timedelta) -> int:
        """Remove sessions past their idle limit or their lifetime."""
        now = self.clock()
        with self.db.begin() as conn:
            stale = (staff_sessions.c.seen_at < now - idle) | (
                staff_sessions.c.created_at < now - lifetime
            )
            return int(conn.execute(delete(staff_sessions).where(stale)).rowcount)
