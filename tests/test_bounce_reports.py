"""Reading DSN and ARF reports, and what each decides: suppression with evidence.

The reports are the RFCs' own examples (tests/fixtures/bounces); deliveries are
real rows of the ledger on each backend.
"""

from __future__ import annotations

import pytest

from campaigns.people import bounces, verp
from campaigns.people.bounce_reports import read_report
from campaigns.services import Services
from tests.support.bounces import report, verp_of
from tests.support.factories import add_patient, add_sent_delivery

EMAIL = "robin@example.net"


def email_patient(svc: Services, external_id: str = "P1", email: str = EMAIL) -> int:
    return add_patient(svc, external_id, email=email, consent={"email": True})


def test_a_verp_address_names_its_delivery_and_a_forged_one_names_none() -> None:
    address = verp.return_path("k" * 40, 4711, "bounces", "clinic.example.org")
    assert address.startswith("bounces+") and address.endswith("@clinic.example.org")
    assert len(address.partition("@")[0]) <= 64
    assert verp.read_return_path("k" * 40, address) == 4711
    assert verp.read_return_path("other" * 8, address) is None
    forged = address.replace("+", "+1", 1)
    assert verp.read_return_path("k" * 40, forged) is None
    assert "4711" not in address


def test_the_rfc_examples_read_as_hard_soft_and_complaint() -> None:
    hard = read_report(report("dsn-hard", verp_to="b+x@e.org", message_id="<m1@e.org>"))
    assert (hard.kind, hard.status, hard.original_message_id) == ("hard", "5.0.0", "<m1@e.org>")
    assert "b+x@e.org" in hard.envelope_to
    soft = read_report(report("dsn-soft", message_id="<m2@e.org>"))
    assert (soft.kind, soft.status, soft.original_message_id) == ("soft", "4.0.0", "<m2@e.org>")
    arf = read_report(report("arf-abuse", verp_to="b+y@e.org", message_id="<m3@e.org>"))
    assert (arf.kind, arf.status, arf.original_message_id) == ("complaint", "abuse", "<m3@e.org>")
    assert "b+y@e.org" in arf.envelope_to
    plain = read_report(b"Subject: out of office\r\nMessage-ID: <x@y>\r\n\r\nback monday\r\n")
    assert plain.kind == "other"


def test_a_hard_bounce_by_verp_suppresses_the_address_with_evidence(svc: Services) -> None:
    patient = email_patient(svc)
    delivery = add_sent_delivery(svc, patient, "<meridian.1.1@example.org>", channel="email")
    raw = report("dsn-hard", verp_to=verp_of(svc, delivery), report_id="r1@mta")
    decision = bounces.decide_report(svc, read_report(raw), source="imap")
    assert (decision.delivery_id, decision.decision) == (delivery, "suppressed")
    row = svc.suppressions.current("email", EMAIL)
    assert row is not None and row.suppressed and row.reason == "bounce"
    assert row.evidence is not None and "r1@mta" in row.evidence and "5.0.0" in row.evidence
    (kept,) = svc.delivery_reports.recent()
    assert (kept.kind, kept.delivery_id, kept.decision) == ("hard", delivery, "suppressed")
    again = bounces.decide_report(svc, read_report(raw), source="imap")
    assert again.decision == "duplicate"
    assert len(svc.suppressions.history("email", EMAIL)) == 1


def test_without_verp_the_original_message_id_finds_the_delivery(svc: Services) -> None:
    patient = email_patient(svc)
    delivery = add_sent_delivery(svc, patient, "<meridian.7.7@example.org>", channel="email")
    raw = report("arf-abuse", verp_to="nobody@example.net", message_id="<meridian.7.7@example.org>")
    decision = bounces.decide_report(svc, read_report(raw), source="imap")
    assert (decision.delivery_id, decision.kind, decision.decision) == (
        delivery,
        "complaint",
        "suppressed",
    )
    row = svc.suppressions.current("email", EMAIL)
    assert row is not None and row.reason == "complaint"


def test_a_report_about_no_delivery_of_ours_suppresses_nothing(svc: Services) -> None:
    email_patient(svc)
    raw = report("dsn-hard", verp_to="bounces+forged.sig@example.org")
    decision = bounces.decide_report(svc, read_report(raw), source="imap")
    assert decision.decision == "no-delivery"
    assert svc.suppressions.current("email", EMAIL) is None


@pytest.mark.parametrize("settings_overrides", [{"soft_bounces_to_suppress": 3}])
def test_soft_bounces_are_counted_and_the_third_suppresses(svc: Services) -> None:
    patient = email_patient(svc)
    decisions = []
    for n in range(3):
        delivery = add_sent_delivery(svc, patient, f"<meridian.{n}.9@example.org>", channel="email")
        raw = report("dsn-soft", verp_to=verp_of(svc, delivery), report_id=f"soft-{n}@mta")
        decisions.append(bounces.decide_report(svc, read_report(raw), source="imap").decision)
    assert decisions == ["counted", "counted", "suppressed"]
    row = svc.suppressions.current("email", EMAIL)
    assert row is not None and row.reason == "soft-bounces"
