"""A/B copy through fan-out and the send loop: 1,000 patients split as configured,
each patient's variant stable across a re-run of the fan-out and the next occurrence,
and each sent their variant's text (campaigns.content.variants)."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from campaigns.content import ab_copy, review, variants
from campaigns.content.approval import review_status
from campaigns.content.catalogue import load_campaign
from campaigns.content.copy import Copy
from campaigns.content.copybook import save_copy
from campaigns.domain.states import RunState
from campaigns.errors import InputError
from campaigns.people.staff import Staff
from campaigns.sending import control, fanout
from campaigns.sending.ab_results import variant_results
from campaigns.store.tables import audit_events
from tests.sending.builders import add_patients, patient, save_campaign
from tests.support.factories import delivery_rows
from tests.support.stubs import StubbedServices, fan_out_queued, send_due

PATIENTS = 1_000


def words(word: str) -> Copy:
    return Copy(
        sms=f"{{{{ clinic.name }}}}: {word} hours start Monday. Reply STOP to opt out",
        subject=f"{word} hours at {{{{ clinic.name }}}}",
        body=f"Hi {{{{ patient.first_name or 'there' }}}},\n\n**{word} hours** start Monday.",
    )


def approve(svc: StubbedServices, name: str) -> None:
    review.submit(svc, name, staff=Staff("mara", "marketer"))
    review.approve(svc, name, staff=Staff("april", "approver"))


def ab_campaign(svc: StubbedServices, split: dict[str, int]) -> str:
    name = save_campaign(svc)
    save_copy(svc, name, words("Walk-in"), actor="mara")
    ab_copy.add_variant(svc, name, actor="mara")
    ab_copy.save_variant(svc, name, "B", words("Evening"), actor="mara")
    ab_copy.set_split(svc, name, split, actor="mara")
    approve(svc, name)
    return name


def variant_by_patient(svc: StubbedServices, run_id: int) -> dict[int, str]:
    found: dict[int, set[str]] = {}
    for row in delivery_rows(svc, run_id):
        found.setdefault(row["patient_id"], set()).add(row["variant"])
    assert all(len(v) == 1 for v in found.values()), "a patient got two variants"
    return {p: next(iter(v)) for p, v in found.items()}


def test_1000_patients_split_within_3_percent_and_keep_their_variant(
    svc: StubbedServices,
) -> None:
    add_patients(svc, *(patient(f"AB-{i:04d}", phone=f"+1617555{i:04d}") for i in range(PATIENTS)))
    name = ab_campaign(svc, {"A": 70, "B": 30})
    run_id = control.run_now(svc, name, actor="test")
    assert run_id is not None
    run = svc.runs.get(run_id)
    assert run is not None and run["variants"]["split"] == {"A": 70, "B": 30}
    fan_out_queued(svc)

    given = variant_by_patient(svc, run_id)
    assert len(given) == PATIENTS
    counts = Counter(given.values())
    assert abs(counts["A"] / PATIENTS - 0.70) <= 0.03, counts
    assert abs(counts["B"] / PATIENTS - 0.30) <= 0.03, counts

    # A second fan-out of the same run (a worker died mid-way) changes no one's variant.
    svc.runs.set_status(run_id, RunState.FANNING_OUT, svc.now(), actor="test")
    fanout.fan_out(svc, run_id)
    assert variant_by_patient(svc, run_id) == given

    # Each patient is sent their variant's words.
    send_due(svc)
    texts = {m.message.delivery_id: m.message.body for m in svc.recorder("sms").taken}
    assert len(texts) == PATIENTS
    for row in (r for r in delivery_rows(svc, run_id) if r["channel"] == "sms"):
        word = "Evening" if given[row["patient_id"]] == "B" else "Walk-in"
        assert word in texts[row["id"]]

    figures = variant_results(svc, run_id)
    assert figures is not None
    sent = {r["variant"]: r["sent"] for r in figures["variants"]}
    assert sent == {"A": counts["A"], "B": counts["B"]}
    assert all(r["clicked"] is None and r["booked"] is None for r in figures["variants"])

    # The next occurrence gives everyone the same variant again.
    svc.advance(minutes=5)
    later = control.run_now(svc, name, actor="test")
    assert later is not None
    fan_out_queued(svc)
    assert variant_by_patient(svc, later) == given


def test_assignment_is_a_pure_function_of_campaign_and_patient() -> None:
    split = {"A": 50, "B": 50}
    first = [variants.assign(7, p, split) for p in range(2_000)]
    assert first == [variants.assign(7, p, split) for p in range(2_000)]
    assert first != [variants.assign(8, p, split) for p in range(2_000)]
    assert {variants.assign(7, p, {"A": 100}) for p in range(200)} == {"A"}


def test_promoting_b_makes_later_runs_send_only_b_and_the_approval_lapse(
    svc: StubbedServices,
) -> None:
    add_patients(svc, *(patient(f"PR-{i:03d}", phone=f"+1617666{i:04d}") for i in range(40)))
    name = ab_campaign(svc, {"A": 50, "B": 50})
    row, definition = load_campaign(svc, name)
    assert review_status(svc, int(row["id"]), definition).approved
    ab_copy.promote(svc, name, "B", actor="mara")
    assert svc.variants.split(int(row["id"])) is None
    current = svc.copies.current(name)
    assert current is not None and "Evening" in current["sms"]
    # A content change: nothing runs until an approver approves it.
    with pytest.raises(InputError, match="not approved"):
        control.run_now(svc, name, actor="test")
    approve(svc, name)
    run_id = control.run_now(svc, name, actor="test")
    assert run_id is not None
    run = svc.runs.get(run_id)
    assert run is not None and run["variants"] is None
    fan_out_queued(svc)
    send_due(svc)
    bodies = [m.message.body for m in svc.recorder("sms").taken]
    assert len(bodies) == 40 and all("Evening hours" in b for b in bodies)
    assert {r["variant"] for r in delivery_rows(svc, run_id)} == {None}
    with svc.db.connect() as conn:
        promoted = conn.execute(
            select(audit_events.c.actor, audit_events.c.detail).where(
                audit_events.c.action == "ab.promote"
            )
        ).one()
    assert promoted.actor == "mara" and promoted.detail["winner"] == "B"
