"""Patients, campaigns, runs, deliveries and staff for tests, made through the store's API.

Each factory takes the test's ``Services`` and returns the ids it made, so a test
states only what matters to it ("a patient who said yes to texts", "a delivery sent
as SM1") and not how a row is spelled. Rows are written by the same calls the
application makes; the reads of ids and states the API does not offer are here,
and nowhere else in the tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from campaigns.content.catalogue import apply_campaign
from campaigns.domain.models import Channel, Claimed, ConsentFact, Outcome, PatientRecord
from campaigns.domain.states import DeliveryState, RunState, SkipReason
from campaigns.people import staff
from campaigns.people.patients import import_patients
from campaigns.services import Services
from campaigns.store.tables import deliveries
from tests.support.settings import ROOT

EXAMPLE_PATIENTS = ROOT / "examples/patients.csv"
EXAMPLE_CAMPAIGN = ROOT / "examples/campaigns/cold-and-flu-season.yaml"
EXAMPLE_NAME = "cold-and-flu-season"
SIGNED_UP = datetime(2024, 3, 1, 15, 0, tzinfo=UTC)
PHONE = "+16175550100"
STAFF_PASSWORD = "correct horse battery staple"
ACTOR = "test"


# patients ------------------------------------------------------------------------------


def patient_record(
    external_id: str = "P1",
    *,
    consent: Mapping[Channel, bool] | None = None,
    consented_at: datetime = SIGNED_UP,
    consent_source: str = "web-form",
    text_shown: str | None = "I agree to reminders",
    first_name: str | None = "Robin",
    last_name: str | None = "Example",
    email: str | None = None,
    phone: str | None = PHONE,
    timezone: str | None = "America/New_York",
    state: str | None = "MA",
    tags: Sequence[str] = ("active",),
    last_visit: date | None = None,
    next_appointment: date | None = None,
    preferred_channel: Channel | None = None,
) -> PatientRecord:
    """A valid patient row: by default Robin in Boston, who said yes to texts."""
    words: Mapping[Channel, bool] = {"sms": True} if consent is None else consent
    return PatientRecord(
        external_id=external_id,
        first_name=first_name,
        last_name=last_name,
        email=email,
        phone=phone,
        timezone=timezone,
        state=state,
        tags=tuple(tags),
        last_visit=last_visit,
        next_appointment=next_appointment,
        preferred_channel=preferred_channel,
        consents=tuple(
            ConsentFact(channel, granted, consented_at, consent_source, text_shown)
            for channel, granted in words.items()
        ),
    )


def add_patients(svc: Services, records: Iterable[PatientRecord]) -> list[int]:
    """Import ``records`` as one batch, as the CSV import does; their ids, in order."""
    batch = list(records)
    svc.patients.import_batches([batch], dry_run=False, actor=ACTOR)
    ids = []
    for record in batch:
        found = svc.patients.find(record.external_id)
        assert found is not None, f"patient {record.external_id} was not imported"
        ids.append(found.patient_id)
    return ids


def add_patient(svc: Services, external_id: str = "P1", **fields: Any) -> int:
    """One patient (``patient_record``'s fields); their id."""
    (patient_id,) = add_patients(svc, [patient_record(external_id, **fields)])
    return patient_id


def add_example_patients(svc: Services) -> None:
    """The 1,000 sample patients of examples/patients.csv."""
    import_patients(EXAMPLE_PATIENTS, svc.patients, region="US", actor=ACTOR)


# campaigns and runs ----------------------------------------------------------------------


def add_example_campaign(svc: Services, *, approve: bool = True) -> str:
    """The shipped cold-and-flu campaign, saved as a draft (approved by the operator
    unless ``approve`` is False, so it may be scheduled and run); its name."""
    apply_campaign(svc, EXAMPLE_CAMPAIGN, actor=ACTOR, approve=approve)
    return EXAMPLE_NAME


def add_examples(svc: Services) -> str:
    """The sample patients and the cold-and-flu campaign; the campaign's name."""
    add_example_patients(svc)
    return add_example_campaign(svc)


def add_campaign(svc: Services, name: str = "c") -> int:
    """A campaign row with an empty definition, for tests of runs and deliveries; its id."""
    return svc.campaigns.save(name, {}, [], actor=ACTOR)


def add_run(
    svc: Services,
    campaign_id: int,
    *,
    occurrence: str = "2027-10-15",
    status: RunState = RunState.RUNNING,
    trigger: str = "manual",
) -> int:
    """A run of ``campaign_id``'s ``occurrence``, started now; its id."""
    run_id = svc.runs.create(campaign_id, occurrence, trigger, status, svc.now(), actor=ACTOR)
    assert run_id is not None, f"campaign {campaign_id} already has a run for {occurrence}"
    return run_id


# deliveries --------------------------------------------------------------------------------


def add_deliveries(
    svc: Services,
    run_id: int,
    patient_ids: Sequence[int],
    *,
    channel: Channel = "sms",
    state: DeliveryState = DeliveryState.PENDING,
    skip_reason: SkipReason | None = None,
    due_at: datetime | None = None,
) -> list[int]:
    """One delivery per patient, as fan-out writes them (due a minute ago by default);
    their ids, in the order of ``patient_ids``."""
    now = svc.now()
    due = now - timedelta(minutes=1) if due_at is None else due_at
    svc.deliveries.add(
        run_id,
        [
            {
                "patient_id": pid,
                "channel": channel,
                "state": state,
                "skip_reason": skip_reason,
                "due_at": due,
            }
            for pid in patient_ids
        ],
        now,
    )
    with svc.db.connect() as conn:
        by_patient = dict(
            conn.execute(
                select(deliveries.c.patient_id, deliveries.c.id).where(
                    deliveries.c.run_id == run_id, deliveries.c.channel == channel
                )
            ).all()
        )
    return [int(by_patient[pid]) for pid in patient_ids]


def claim(svc: Services, delivery_ids: Sequence[int], at: datetime | None = None) -> list[Claimed]:
    """Claim every one of ``delivery_ids`` as a worker would, ``at`` (default now).

    A claim made ``at`` a time older than the claim timeout is one the sweeper takes
    for a dead worker's.
    """
    claimed = svc.deliveries.claim(delivery_ids, svc.now() if at is None else at)
    assert sorted(c.delivery_id for c in claimed) == sorted(delivery_ids), "not all claimed"
    return claimed


def add_sent_delivery(
    svc: Services, patient_id: int, provider_id: str, *, channel: Channel = "sms"
) -> int:
    """A delivery to ``patient_id`` that a worker sent as ``provider_id``, in a run of
    its own campaign; its id."""
    run_id = add_run(svc, add_campaign(svc, f"c-{provider_id}"))
    (delivery_id,) = add_deliveries(svc, run_id, [patient_id], channel=channel)
    now = svc.now()
    claim(svc, [delivery_id], now)
    svc.deliveries.record([Outcome(delivery_id, DeliveryState.SENT, provider_id=provider_id)], now)
    return delivery_id


def delivery_state(svc: Services, delivery_id: int) -> tuple[str, str | None]:
    """A delivery's state and error code."""
    with svc.db.connect() as conn:
        state, error_code = conn.execute(
            select(deliveries.c.state, deliveries.c.error_code).where(
                deliveries.c.id == delivery_id
            )
        ).one()
    return str(state), error_code


def delivery_states(svc: Services, delivery_ids: Iterable[int]) -> dict[int, str]:
    """The state of each of ``delivery_ids``, by id."""
    with svc.db.connect() as conn:
        rows = conn.execute(
            select(deliveries.c.id, deliveries.c.state).where(
                deliveries.c.id.in_(list(delivery_ids))
            )
        ).all()
    return {int(i): str(s) for i, s in rows}


def delivery_rows(svc: Services, run_id: int) -> list[dict[str, Any]]:
    """Every column of every delivery of ``run_id``, in id order."""
    with svc.db.connect() as conn:
        rows = conn.execute(
            select(deliveries).where(deliveries.c.run_id == run_id).order_by(deliveries.c.id)
        ).mappings()
        return [dict(r) for r in rows]


def deliveries_by_id(svc: Services, delivery_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Every column of each of ``delivery_ids``, by id."""
    with svc.db.connect() as conn:
        rows = conn.execute(
            select(deliveries).where(deliveries.c.id.in_(list(delivery_ids)))
        ).mappings()
        return {int(r["id"]): dict(r) for r in rows}


def patients_in_state(svc: Services, run_id: int, state: DeliveryState) -> list[int]:
    """The patients whose delivery in ``run_id`` is in ``state``."""
    with svc.db.connect() as conn:
        rows = conn.execute(
            select(deliveries.c.patient_id)
            .where(deliveries.c.run_id == run_id, deliveries.c.state == state)
            .order_by(deliveries.c.patient_id)
        ).all()
    return [int(p) for (p,) in rows]


# staff ---------------------------------------------------------------------------------


def add_staff(svc: Services, **roles: str) -> None:
    """Console users by name and role (``ada="admin"``), all with STAFF_PASSWORD."""
    for username, role in roles.items():
        staff.add_user(svc, username, STAFF_PASSWORD, role)
