"""Patients, campaigns and ledger reads shared by the send loop's tests."""

from __future__ import annotations

import zlib
from datetime import UTC, date, datetime
from typing import Any

from campaigns.content.catalogue import save_definition
from campaigns.content.definitions import load_definition, parse_definition
from campaigns.domain.models import Channel, ConsentFact, PatientRecord
from campaigns.services import Services
from tests.conftest import ROOT
from tests.support.factories import delivery_rows

__all__ = ["add_patients", "delivery_rows", "due_times", "patient", "plan", "save_campaign"]

SHIPPED = ROOT / "examples/campaigns/cold-and-flu-season.yaml"
SIGNED_UP = datetime(2024, 3, 1, 15, 0, tzinfo=UTC)


def patient(
    external_id: str,
    *,
    timezone: str | None = "America/New_York",
    state: str | None = "MA",
    phone: str | None = None,
    sms: bool | None = True,
    email: bool | None = None,
    preferred: Channel | None = None,
    last_visit: date | None = date(2025, 9, 1),
    next_appointment: date | None = None,
    tags: tuple[str, ...] = ("active",),
) -> PatientRecord:
    """An active patient; ``sms``/``email``: granted, refused (False) or never asked.

    Each gets a Boston number of its own unless ``phone`` is given: patients who share
    a number get one text per occurrence (campaigns.sending.fanout).
    """
    words: dict[Channel, bool | None] = {"sms": sms, "email": email}
    consents = tuple(
        ConsentFact(channel, granted, SIGNED_UP, "web-form")
        for channel, granted in words.items()
        if granted is not None
    )
    return PatientRecord(
        external_id=external_id,
        first_name="Robin",
        last_name="Example",
        email=f"{external_id.lower()}@example.org",
        phone=phone if phone is not None else _own_number(external_id),
        timezone=timezone,
        state=state,
        tags=tags,
        last_visit=last_visit,
        next_appointment=next_appointment,
        preferred_channel=preferred,
        consents=consents,
    )


def _own_number(external_id: str) -> str:
    return f"+1617555{zlib.crc32(external_id.encode()) % 10_000:04d}"


def add_patients(svc: Services, *records: PatientRecord) -> dict[int, str]:
    """Import the patients; their external ids by patient id."""
    svc.patients.import_batches([list(records)], dry_run=False, actor="test")
    found = {r.external_id: svc.patients.find(r.external_id) for r in records}
    return {p.patient_id: ext for ext, p in found.items() if p is not None}


def save_campaign(svc: Services, **changes: Any) -> str:
    """The shipped campaign, with top-level fields or ``schedule``/``limits`` fields
    changed (``send_time="07:30"``, ``max_attempts=2``); returns its name."""
    data = load_definition(SHIPPED).to_json()
    for section in ("schedule", "limits"):
        for key in list(changes):
            if key in data[section]:
                data[section][key] = changes.pop(key)
    data |= changes
    definition = parse_definition(data, "test campaign")
    save_definition(svc, definition, actor="test", source="test campaign", approve=True)
    return definition.name


def plan(svc: Services, run_id: int, names: dict[int, str]) -> set[tuple[str, str, str, Any]]:
    """(patient, channel, state, skip reason) of every delivery of the run."""
    return {
        (names[r["patient_id"]], r["channel"], r["state"], r["skip_reason"])
        for r in delivery_rows(svc, run_id)
    }


def due_times(svc: Services, run_id: int, names: dict[int, str]) -> dict[tuple[str, str], Any]:
    """(patient, channel) -> due_at of every pending delivery of the run, as UTC."""
    return {
        (names[r["patient_id"]], r["channel"]): _utc(r["due_at"])
        for r in delivery_rows(svc, run_id)
        if r["state"] == "pending"
    }


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC)
