"""The import's writes (store.patient_import) on both databases: new patients written
as the database would write them, evidence as an update would append it, and an
error anywhere leaving nothing behind."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from campaigns.domain.models import ConsentFact, PatientRecord
from campaigns.errors import InputError
from campaigns.services import Services
from campaigns.store.read_ahead import ReadAhead
from campaigns.store.tables import patients
from tests.support.factories import SIGNED_UP, patient_record

EVIDENCE = ("channel", "granted", "address", "at", "source", "text_shown", "recorded_by")
WORDS = ("sms_opt_in", "email_opt_in", "sms_consent_for", "email_consent_for")


def import_(svc: Services, *batches: Sequence[PatientRecord]) -> tuple[int, int, int]:
    return svc.patients.import_batches(list(batches), dry_run=False, actor="test")


def ids_in_file_order(svc: Services, external_ids: Sequence[str]) -> list[int]:
    found = [svc.patients.find(e) for e in external_ids]
    return [f.patient_id for f in found if f is not None]


def evidence_and_words(svc: Services, external_id: str) -> tuple[list[tuple[Any, ...]], Any]:
    found = svc.patients.find(external_id)
    assert found is not None
    said = [tuple(row[k] for k in EVIDENCE) for row in svc.consent.history(found.patient_id)]
    return said, tuple(getattr(found, k) for k in WORDS)


def test_new_patients_get_the_next_ids_in_file_order_and_later_inserts_follow(
    svc: Services,
) -> None:
    first = [patient_record(f"P{n}", phone=f"+1617555{n:04d}") for n in range(5)]
    more = [patient_record(f"Q{n}", phone=f"+1617556{n:04d}") for n in range(3)]

    assert import_(svc, first[:2], first[2:]) == (5, 0, 0)
    assert import_(svc, [first[0], *more]) == (3, 1, 0)

    ids = ids_in_file_order(svc, [r.external_id for r in first + more])
    assert ids == sorted(ids) and len(set(ids)) == 8
    # An ordinary insert after the import takes an id the import did not.
    with svc.db.begin() as conn:
        later = conn.execute(
            insert(patients)
            .values(external_id="Z", created_at=SIGNED_UP, updated_at=SIGNED_UP)
            .returning(patients.c.id)
        ).scalar_one()
    assert later > max(ids)


def test_batches_are_written_in_order_even_when_a_later_one_repeats_a_patient(
    svc: Services,
) -> None:
    # Batches are joined into larger writes; one naming a patient again is not.
    first = [patient_record(f"P{n}", phone=f"+1617555{n:04d}") for n in range(3)]
    again = patient_record("P1", phone="+16175559999")

    assert import_(svc, first[:1], first[1:], [again], [patient_record("P9")]) == (4, 1, 0)

    found = svc.patients.find("P1")
    assert found is not None and found.phone == "+16175559999"
    assert ids_in_file_order(svc, ["P0", "P1", "P2", "P9"]) == sorted(
        ids_in_file_order(svc, ["P0", "P1", "P2", "P9"])
    )


def test_a_reimport_finds_external_ids_and_numbers_whatever_characters_they_hold(
    svc: Services,
) -> None:
    # On SQLite both look-ups go as one JSON array parameter (store.bulk.one_of).
    odd = ['Ä"1\\', "P,2'", "\u65e5\u672c-3", "P 4\t"]
    assert import_(svc, [patient_record(e) for e in odd]) == (4, 0, 0)
    at = datetime(2024, 5, 1, tzinfo=UTC)
    svc.suppressions.add("sms", "+16175550100", suppressed=True, reason="stop", actor="t", at=at)

    assert import_(svc, [patient_record(e) for e in odd]) == (0, 4, 4)
    assert svc.patients.count() == 4


@pytest.mark.parametrize(
    "facts",
    [
        (),
        (ConsentFact("sms", True, SIGNED_UP, "web-form", "I agree"),),
        (
            ConsentFact("sms", True, SIGNED_UP, "web-form", "I agree"),
            ConsentFact("email", False, SIGNED_UP, "front-desk"),
        ),
        (  # a later no, an earlier yes, and a repeat of the no: the no is the word
            ConsentFact("sms", False, SIGNED_UP + timedelta(days=2), "front-desk"),
            ConsentFact("sms", True, SIGNED_UP, "web-form", None, "+16175550199"),
            ConsentFact("sms", False, SIGNED_UP + timedelta(days=2), "front-desk"),
        ),
        (  # a tie in time: the first recorded is the word
            ConsentFact("email", True, SIGNED_UP, "web-form"),
            ConsentFact("email", False, SIGNED_UP, "front-desk"),
        ),
    ],
)
def test_a_new_patients_evidence_and_words_are_what_an_update_would_write(
    svc: Services, facts: tuple[ConsentFact, ...]
) -> None:
    def record(external_id: str, consents: tuple[ConsentFact, ...]) -> PatientRecord:
        base = patient_record(external_id, email="robin@example.org")
        return PatientRecord(**{**base.__dict__, "consents": consents})

    # New: written with the row. On file already: appended by append_consents.
    import_(svc, [record("NEW", facts)])
    import_(svc, [record("OLD", ())])
    import_(svc, [record("OLD", facts)])

    new_said, new_words = evidence_and_words(svc, "NEW")
    old_said, old_words = evidence_and_words(svc, "OLD")
    assert new_words == old_words
    assert new_said == old_said
    assert len(new_said) == len({(f.channel, f.granted, f.at) for f in facts})


def test_an_error_from_the_batches_after_a_written_batch_leaves_nothing(svc: Services) -> None:
    def batches() -> Iterator[list[PatientRecord]]:
        yield [patient_record("P1")]
        yield [patient_record("P2")]
        raise InputError("the file changed")

    with pytest.raises(InputError, match="the file changed"):
        svc.patients.import_batches(batches(), dry_run=False, actor="test")

    assert svc.patients.count() == 0


def test_a_batch_the_database_refuses_leaves_nothing(svc: Services) -> None:
    # Two rows with one external_id, which the CSV scan would never hand over.
    with pytest.raises(IntegrityError):
        import_(svc, [patient_record("P1")], [patient_record("P2"), patient_record("P2")])

    assert svc.patients.count() == 0


def test_the_suppression_list_opts_out_by_the_latest_row_on_each_channel(svc: Services) -> None:
    at = datetime(2024, 5, 1, tzinfo=UTC)
    lists = svc.suppressions
    lists.add("email", "p1@example.org", suppressed=True, reason="bounce", actor="t", at=at)
    lists.add("sms", "+16175550101", suppressed=True, reason="stop", actor="t", at=at)
    lists.add("sms", "+16175550101", suppressed=False, reason="start", actor="t", at=at)
    both = {"sms": True, "email": True}
    p1 = patient_record("P1", phone="+16175550101", email="p1@example.org", consent=both)
    p2 = patient_record("P2", phone="+16175550102", email="p2@example.org", consent=both)

    assert import_(svc, [p1, p2]) == (2, 0, 1)

    one, two = svc.patients.find("P1"), svc.patients.find("P2")
    assert one is not None and (one.sms_opt_in, one.email_opt_in) == (True, False)
    assert two is not None and (two.sms_opt_in, two.email_opt_in) == (True, True)
    last = svc.consent.history(one.patient_id)[-1]
    assert (last["channel"], last["source"]) == ("email", "suppression-list")


def test_read_ahead_gives_the_items_then_the_error_in_order() -> None:
    def items() -> Iterator[int]:
        yield from range(5)
        raise InputError("bad row")

    ahead = ReadAhead(items(), depth=1)
    seen = []
    with pytest.raises(InputError, match="bad row"):
        seen.extend(ahead)
    ahead.close()
    assert seen == [0, 1, 2, 3, 4]


def test_read_ahead_closed_early_stops_reading_and_closes_its_source() -> None:
    read: list[int] = []
    closed: list[bool] = []

    def items() -> Iterator[int]:
        try:
            for n in range(1000):
                read.append(n)
                yield n
        finally:
            closed.append(True)

    ahead = ReadAhead(items(), depth=1)
    for n in ahead:
        if n == 2:
            break
    ahead.close()

    assert closed == [True] and len(read) < 10
