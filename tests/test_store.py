"""The store's SQL where SQLite and PostgreSQL could disagree: it must answer alike on both."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Connection, create_engine, event, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.pool import NullPool

from campaigns.domain.models import ConsentFact
from campaigns.domain.states import CampaignState
from campaigns.errors import InputError
from campaigns.services import Services
from campaigns.store import db as db_module
from campaigns.store.bulk import insert_rows
from campaigns.store.consent import append_consents, consent_row
from campaigns.store.tables import consents, patients
from tests.support.factories import SIGNED_UP, add_patient, add_patients, patient_record
from tests.support.waiting import wait_until

TODAY = date(2024, 11, 1)


@pytest.fixture
def settings_overrides(database_url: str) -> dict[str, object]:
    """A database several connections share (on SQLite, a file): the consent test
    writes from two threads at once."""
    return {"database_url": database_url}


# audiences ---------------------------------------------------------------------------


def test_an_audience_matches_whole_tags_whatever_their_case(svc: Services) -> None:
    add_patients(
        svc,
        [
            patient_record("P1", tags=["active"]),
            patient_record("P2", tags=["active", "do-not-market"]),
            patient_record("P3", tags=["inactive"]),
            patient_record("P4", tags=["act-ive"]),
        ],
    )

    def audience(**clauses: list[str]) -> list[str]:
        chunks = svc.patients.stream_audience(dict(clauses), TODAY)
        found = [r.external_id for chunk in chunks for r in chunk]
        assert svc.patients.count_audience(dict(clauses), TODAY) == len(found)
        return found

    assert audience(tags_any=["Active"]) == ["P1", "P2"]
    assert audience(tags_any=["ACTIVE"], tags_none=["Do-Not-Market"]) == ["P1"]
    assert audience(tags_none=["DO-NOT-MARKET"]) == ["P1", "P3", "P4"]


@pytest.mark.parametrize("tag", ["act_ve", "act%", "%", "_ctive", "act-_ve"])
def test_like_wildcards_in_an_audience_tag_match_only_themselves(svc: Services, tag: str) -> None:
    add_patients(
        svc, [patient_record("P1", tags=["active"]), patient_record("P2", tags=["act-ive"])]
    )

    assert svc.patients.count_audience({"tags_any": [tag]}, TODAY) == 0
    assert svc.patients.count_audience({"tags_none": [tag]}, TODAY) == 2


# consent under concurrency -------------------------------------------------------------


@contextmanager
def write_lock_requests(svc: Services) -> Iterator[threading.Event]:
    """An event set once another thread asks for SQLite's write lock (BEGIN IMMEDIATE)."""
    asked = threading.Event()
    here = threading.get_ident()

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement == "BEGIN IMMEDIATE" and threading.get_ident() != here:
            asked.set()

    event.listen(svc.db.engine, "before_cursor_execute", seen)
    try:
        yield asked
    finally:
        event.remove(svc.db.engine, "before_cursor_execute", seen)


def wait_until_blocked(svc: Services, asked_for_write_lock: threading.Event) -> None:
    """Return once another session waits for a lock this transaction holds.

    PostgreSQL shows the waiter in pg_stat_activity. SQLite's busy handler waits where
    no query can see it: there, wait until the other session has asked for the write
    lock, which it cannot get before this transaction ends.
    """
    if svc.db.backend == "sqlite":
        wait_until(asked_for_write_lock.is_set, 10, "the second writer to ask for the write lock")
        return
    with svc.db.connect() as conn:

        def someone_waits() -> bool:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
            conn.rollback()  # a fresh snapshot of pg_stat_activity for the next poll
            return bool(waiting)

        wait_until(someone_waits, 10, "the second writer to wait for the first")


def test_a_consent_written_while_another_is_uncommitted_still_caches_the_latest_word(
    svc: Services,
) -> None:
    pid = add_patient(svc, "P1", tags=[])
    start = ConsentFact("sms", True, SIGNED_UP + timedelta(days=1), "keyword", "START")
    stop = ConsentFact("sms", False, SIGNED_UP + timedelta(days=2), "keyword", "STOP")

    with ThreadPoolExecutor(max_workers=1) as pool, write_lock_requests(svc) as asked:
        with svc.db.begin() as conn:
            append_consents(conn, {pid: [stop]}, "test", svc.now())
            # The older START is written while the newer STOP is not committed yet.
            second = pool.submit(svc.consent.record, [pid], start, actor="test")
            wait_until_blocked(svc, asked)
        second.result(timeout=30)

    assert [f["granted"] for f in svc.consent.history(pid)] == [True, True, False]
    assert svc.consent.current(pid)["sms"] is False


# the consent evidence's patient: a foreign key per row on SQLite, one check per
# statement on PostgreSQL (migration 0012); the same promises on both ------------------


def _evidence(pid: int) -> dict[str, Any]:
    fact = ConsentFact("sms", True, SIGNED_UP, "import", None)
    return consent_row(pid, fact, "+15005550006")


def _write_evidence(conn: Connection, rows: list[dict[str, Any]], how: str) -> None:
    if how == "bulk":  # COPY on PostgreSQL, as the import writes it
        insert_rows(conn, consents, rows, same={"recorded_by": "test", "recorded_at": SIGNED_UP})
    else:
        conn.execute(
            insert(consents), [{**r, "recorded_by": "test", "recorded_at": SIGNED_UP} for r in rows]
        )


def _evidence_rows(svc: Services) -> list[tuple[Any, ...]]:
    with svc.db.connect() as conn:
        return [tuple(r) for r in conn.execute(select(consents.c.patient_id, consents.c.address))]


@pytest.mark.parametrize("how", ["bulk", "insert"])
def test_evidence_naming_a_patient_that_does_not_exist_is_refused_whole(
    svc: Services, how: str
) -> None:
    pid = add_patient(svc, "P1", consent={})
    with pytest.raises(IntegrityError), svc.db.begin() as conn:
        _write_evidence(conn, [_evidence(pid), _evidence(pid + 99)], how)
    assert _evidence_rows(svc) == []

    email = {**_evidence(pid), "channel": "email", "address": "robin@example.org"}
    with svc.db.begin() as conn:  # the patient twice, and a row naming none: all written
        _write_evidence(conn, [_evidence(pid), email, {**_evidence(pid), "patient_id": None}], how)
    assert sorted(_evidence_rows(svc), key=repr) == sorted(
        [(pid, "+15005550006"), (pid, "robin@example.org"), (None, "+15005550006")], key=repr
    )


def test_a_patient_whose_evidence_refers_to_its_id_keeps_that_id(svc: Services) -> None:
    with_evidence, without = add_patient(svc, "P1", consent={}), add_patient(svc, "P2", consent={})
    with svc.db.begin() as conn:
        _write_evidence(conn, [_evidence(with_evidence)], "bulk")

    with pytest.raises(IntegrityError), svc.db.begin() as conn:
        conn.execute(text("UPDATE patients SET id = 1000 WHERE id = :p"), {"p": with_evidence})
    with svc.db.begin() as conn:
        conn.execute(text("UPDATE patients SET id = 1001 WHERE id = :p"), {"p": without})

    with svc.db.connect() as conn:
        ids = set(conn.execute(select(patients.c.id)).scalars())
    assert ids == {with_evidence, 1001}
    assert _evidence_rows(svc) == [(with_evidence, "+15005550006")]


def test_a_patient_deleted_while_its_evidence_is_written_keeps_it_redacted(
    svc: Services,
) -> None:
    """The evidence's writer holds the patient: the deletion waits for it to commit,
    then redacts the new evidence as it does the old (migration 0003)."""
    pid = add_patient(svc, "P1", consent={})

    def delete_patient() -> None:
        with svc.db.begin() as conn:
            conn.execute(text("DELETE FROM patients WHERE id = :p"), {"p": pid})

    with ThreadPoolExecutor(max_workers=1) as pool, write_lock_requests(svc) as asked:
        with svc.db.begin() as conn:
            _write_evidence(conn, [_evidence(pid)], "bulk")
            deleted = pool.submit(delete_patient)
            wait_until_blocked(svc, asked)
        deleted.result(timeout=30)

    assert svc.patients.count() == 0
    assert _evidence_rows(svc) == [(None, None)]


def test_evidence_for_a_patient_deleted_meanwhile_is_refused(svc: Services) -> None:
    """The deletion holds the patient: the evidence waits for it to commit, then finds
    no patient and writes nothing."""
    pid = add_patient(svc, "P1", consent={})

    def write() -> None:
        with svc.db.begin() as conn:
            _write_evidence(conn, [_evidence(pid)], "bulk")

    with ThreadPoolExecutor(max_workers=1) as pool, write_lock_requests(svc) as asked:
        with svc.db.begin() as conn:
            conn.execute(text("DELETE FROM patients WHERE id = :p"), {"p": pid})
            written = pool.submit(write)
            wait_until_blocked(svc, asked)
        with pytest.raises(IntegrityError):
            written.result(timeout=30)

    assert _evidence_rows(svc) == []


@pytest.mark.parametrize("isolation", ["REPEATABLE READ", "SERIALIZABLE"])
@pytest.mark.parametrize("statement", ["DELETE FROM patients", "UPDATE patients SET id = 1000"])
def test_a_patient_is_deleted_or_renumbered_only_in_read_committed(
    svc: Services, backend: str, statement: str, isolation: str
) -> None:
    """Deleting a patient redacts its evidence, and moving its id looks for evidence:
    under an older snapshot both would miss evidence committed since."""
    if backend != "postgresql":
        pytest.skip("SQLite has one writer at a time and no older snapshot to read")
    add_patient(svc, "P1")
    conn = svc.db.engine.connect().execution_options(isolation_level=isolation)
    with (
        conn,
        pytest.raises(DBAPIError, match="only in a READ COMMITTED transaction"),
        conn.begin(),
    ):
        conn.execute(text(statement))
    assert svc.patients.count() == 1
    with svc.db.begin() as conn:  # Meridian's own isolation
        conn.execute(text("DELETE FROM patients"))
    assert svc.patients.count() == 0


# bulk inserts ----------------------------------------------------------------------------


def test_bulk_rows_are_stored_as_an_ordinary_insert_stores_them(svc: Services) -> None:
    # Every type the bulk path converts by hand: text with a tab, quote and newline
    # (COPY's own escapes), None, dates, booleans, aware instants in another zone,
    # and a shared value given once.
    eastern = datetime(2024, 3, 10, 1, 30, tzinfo=UTC).astimezone(ZoneInfo("America/New_York"))
    row = {
        "first_name": "Ro\tbin 'O\"Neil'\nJr \\ ü",
        "last_name": None,
        "email": "robin@example.org",
        "phone": None,
        "timezone": None,
        "state": "NY",
        "last_visit": date(2024, 2, 29),
        "next_appointment": None,
        "preferred_channel": "sms",
        "sms_opt_in": True,
        "email_opt_in": False,
        "updated_at": eastern,
    }
    with svc.db.begin() as conn:
        conn.execute(insert(patients), [{**row, "external_id": "A", "created_at": SIGNED_UP}])
        insert_rows(conn, patients, [{**row, "external_id": "B"}], same={"created_at": SIGNED_UP})
        stored = {
            r.external_id: r._asdict()
            for r in conn.execute(select(patients).where(patients.c.external_id.in_(["A", "B"])))
        }
    a, b = (dict(stored[k]) for k in ("A", "B"))
    assert a.pop("id") != b.pop("id")
    assert a.pop("external_id") == "A" and b.pop("external_id") == "B"
    assert b == a
    assert a["tags"] == ";"  # the column's default, applied by both paths
    assert a["updated_at"] == datetime(2024, 3, 10, 1, 30, tzinfo=UTC)


def test_bulk_rows_refuse_a_value_given_twice_and_a_missing_column(svc: Services) -> None:
    with svc.db.begin() as conn:
        with pytest.raises(InputError, match="both per row and as shared"):
            insert_rows(
                conn,
                patients,
                [{"external_id": "A", "created_at": SIGNED_UP}],
                same={"created_at": SIGNED_UP},
            )
        with pytest.raises(InputError, match="must all have the columns"):
            insert_rows(
                conn,
                patients,
                [{"external_id": "A", "tags": ";"}, {"external_id": "B"}],
                same={"created_at": SIGNED_UP, "updated_at": SIGNED_UP},
            )


def test_a_bulk_row_that_breaks_a_constraint_raises_integrity_error(svc: Services) -> None:
    # On PostgreSQL the rows go by COPY, outside SQLAlchemy's own execution: its
    # error must still reach callers as the IntegrityError any other insert raises.
    with pytest.raises(IntegrityError), svc.db.begin() as conn:
        insert_rows(
            conn,
            patients,
            [{"external_id": "A"}, {"external_id": "A"}],
            same={"created_at": SIGNED_UP, "updated_at": SIGNED_UP},
        )
    assert svc.patients.count() == 0


# campaign status ---------------------------------------------------------------------


def test_a_campaign_moves_only_as_the_state_machine_allows_and_only_a_move_is_audited(
    svc: Services,
) -> None:
    cid = svc.campaigns.save("c", {}, [], actor="test")
    paused = CampaignState.PAUSED
    assert not svc.campaigns.set_status(cid, paused, actor="test")  # a draft does not pause
    assert svc.campaigns.set_status(cid, CampaignState.SCHEDULED, actor="test")
    assert svc.campaigns.set_status(cid, CampaignState.CANCELLED, actor="test")
    # A resume that read "paused" before the cancel landed changes nothing.
    assert not svc.campaigns.set_status(
        cid, CampaignState.SCHEDULED, actor="test", only_from=[paused]
    )
    assert not svc.campaigns.set_status(cid, CampaignState.CANCELLED, actor="test")
    assert svc.campaigns.get(cid)["status"] == CampaignState.CANCELLED  # type: ignore[index]
    actions = [e["action"] for e in reversed(svc.reports.audit_page())]
    assert actions == ["campaign.create", "campaign.scheduled", "campaign.cancelled"]


def test_a_pooled_connection_the_server_has_dropped_is_replaced_before_a_read(
    svc: Services, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connections are pinged only after sitting idle (campaigns.store.db): one the
    server ended meanwhile (a restart, an administrator) is replaced, not used."""
    if backend != "postgresql":
        pytest.skip("SQLite has no server to drop a connection")
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_S", 0.0)
    with svc.db.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    other = create_engine(svc.db.engine.url, poolclass=NullPool)
    try:
        with other.connect() as admin:
            assert admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()

            def gone() -> bool:
                with other.connect() as c:
                    found = c.execute(
                        text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": pid}
                    )
                    return found.scalar_one() == 0

            wait_until(gone, timeout=10, what="the backend to end")
    finally:
        other.dispose()

    with svc.db.connect() as conn:
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid


def test_a_sqlite_writer_waits_for_the_write_lock_for_a_bounded_time(
    svc: Services, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writers ask for SQLite's write lock again and again while another holds it
    (campaigns.store.db), and give up with SQLite's own error after WRITE_LOCK_WAIT_S."""
    if backend != "sqlite":
        pytest.skip("PostgreSQL's writers wait on row locks, not on one write lock")
    monkeypatch.setattr(db_module, "WRITE_LOCK_WAIT_S", 0.3)

    def write() -> None:
        with svc.db.begin() as conn:
            conn.execute(text("SELECT 1"))

    with ThreadPoolExecutor(max_workers=1) as pool:
        with svc.db.begin():
            refused = pool.submit(write)
            with pytest.raises(OperationalError, match="locked"):
                refused.result(timeout=30)
        pool.submit(write).result(timeout=30)  # the lock is free again: it goes
