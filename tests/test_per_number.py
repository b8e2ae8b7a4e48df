"""Rules per number, not per patient, through real fan-outs and sends.

Four patients share one Oklahoma household phone (OK allows 3 texts in 24 hours):
each run texts the number once, and the fourth run within the day is capped. The
messages are counted on the other side, in the outbox's own log. Fan-out takes a
Redis lock, so a private redis-server runs; the due set and dispatcher are the
in-memory stubs, and sending runs in this process.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from campaigns.content.catalogue import apply_campaign
from campaigns.domain.models import ConsentFact, PatientRecord
from campaigns.domain.states import RunState
from campaigns.sending import delivery, fanout
from campaigns.sending.stubs import MemoryDispatcher, MemoryDueQueue
from campaigns.services import Services
from campaigns.store.tables import deliveries
from tests.conftest import ROOT, make_settings
from tests.support.services import RedisServer
from tests.support.workers import shift_into_window

SHIPPED = ROOT / "examples/campaigns/cold-and-flu-season.yaml"
HOUSEHOLD = "+14055550100"  # Oklahoma City
SIGNED_UP = datetime(2024, 3, 1, 15, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    server = RedisServer().start()
    yield server.url
    server.stop()


@pytest.fixture
def svc(tmp_path: Path, database_url: str, redis_url: str) -> Iterator[Services]:
    settings = make_settings(
        tmp_path,
        database_url=database_url,
        redis_url=redis_url,
        clock_shift_s=shift_into_window(),
        sms_rate=0,
        email_rate=0,
    )
    services = Services(settings, MemoryDispatcher(), due=MemoryDueQueue())
    services.db.upgrade()
    services.redis.flushdb()
    yield services
    services.close()


def patient(external_id: str, phone: str, *, state: str = "OK") -> PatientRecord:
    return PatientRecord(
        external_id,
        "Sam",
        external_id,
        None,
        phone,
        "America/Chicago",
        state,
        ("active",),
        None,
        None,
        "sms",
        (ConsentFact("sms", True, SIGNED_UP, "intake-form", "I agree to texts"),),
    )


def texts_only_campaign(tmp_path: Path) -> Path:
    data: dict[str, Any] = yaml.safe_load(SHIPPED.read_text())
    data["name"] = "household-test"
    data["channels"] = ["sms"]
    data["audience"] = {}
    data["limits"]["frequency_cap_days"] = 0
    path = tmp_path / "household.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_once(svc: Services, campaign_id: int, n: int) -> int:
    """Fan out run ``n`` and send everything due, in this process."""
    run_id = svc.runs.create(
        campaign_id,
        f"now:{(svc.now() + timedelta(microseconds=n)).isoformat()}",
        "manual",
        RunState.FANNING_OUT,
        svc.now(),
        actor="test",
    )
    assert run_id is not None
    fanout.fan_out(svc, run_id)
    queue = svc.due
    assert isinstance(queue, MemoryDueQueue)
    for batch in queue.pop_due(svc.now() + timedelta(seconds=1), limit=1000):
        delivery.send_batch(svc, batch)
    return run_id


def outcomes(svc: Services, run_id: int) -> list[tuple[str, str | None]]:
    with svc.db.connect() as conn:
        rows = conn.execute(
            select(deliveries.c.state, deliveries.c.skip_reason)
            .where(deliveries.c.run_id == run_id)
            .order_by(deliveries.c.patient_id)
        ).all()
    return [(str(s), r) for s, r in rows]


def texts_to(svc: Services, number: str) -> int:
    log = svc.settings.outbox_dir / "outbox.jsonl"
    if not log.exists():
        return 0
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return sum(1 for m in lines if m.get("channel") == "sms" and m.get("to") == number)


def test_four_patients_on_one_oklahoma_number_get_one_text_per_run_and_three_a_day(
    svc: Services, tmp_path: Path
) -> None:
    family = [patient(f"H{i}", HOUSEHOLD) for i in range(4)]
    svc.patients.import_batches([family], dry_run=False, actor="test")
    campaign_id = apply_campaign(
        svc, texts_only_campaign(tmp_path), actor="test", approve=True
    ).campaign_id

    first = run_once(svc, campaign_id, 1)
    assert outcomes(svc, first) == [("sent", None)] + [("skipped", "shared_number")] * 3
    assert texts_to(svc, HOUSEHOLD) == 1

    second = run_once(svc, campaign_id, 2)
    assert outcomes(svc, second) == [("sent", None)] + [("skipped", "shared_number")] * 3
    assert texts_to(svc, HOUSEHOLD) == 2

    run_once(svc, campaign_id, 3)
    fourth = run_once(svc, campaign_id, 4)
    assert outcomes(svc, fourth)[0] == ("skipped", "frequency_cap")
    assert texts_to(svc, HOUSEHOLD) == 3


def test_a_patient_whose_phone_changed_has_no_sms_consent_for_the_new_number(
    svc: Services, tmp_path: Path
) -> None:
    svc.patients.import_batches([[patient("P1", "+14055550111")]], dry_run=False, actor="test")
    # The same row re-imported with a new phone and the same consent: not a new consent.
    svc.patients.import_batches([[patient("P1", "+14055550122")]], dry_run=False, actor="test")
    campaign_id = apply_campaign(
        svc, texts_only_campaign(tmp_path), actor="test", approve=True
    ).campaign_id

    run_id = run_once(svc, campaign_id, 1)

    assert outcomes(svc, run_id) == [("skipped", "no_consent_for_number")]
    assert texts_to(svc, "+14055550122") == 0
    found = svc.patients.find("P1")
    assert found is not None
    history = svc.consent.history(found.patient_id)
    assert [h["address"] for h in history] == ["+14055550111"]


def test_a_consent_recorded_for_the_new_number_lets_it_be_texted(
    svc: Services, tmp_path: Path
) -> None:
    svc.patients.import_batches([[patient("P1", "+14055550111")]], dry_run=False, actor="test")
    moved = patient("P1", "+14055550122")
    new_consent = ConsentFact("sms", True, SIGNED_UP + timedelta(days=30), "web-form", "yes")
    svc.patients.import_batches(
        [[replace(moved, consents=(new_consent,))]], dry_run=False, actor="test"
    )
    campaign_id = apply_campaign(
        svc, texts_only_campaign(tmp_path), actor="test", approve=True
    ).campaign_id

    run_id = run_once(svc, campaign_id, 1)

    assert outcomes(svc, run_id) == [("sent", None)]
    assert texts_to(svc, "+14055550122") == 1


def test_a_suppressed_number_is_skipped_at_fan_out_and_an_unsuppressed_one_is_not(
    svc: Services, tmp_path: Path
) -> None:
    svc.patients.import_batches(
        [[patient("P1", "+14055550111"), patient("P2", "+14055550122")]],
        dry_run=False,
        actor="test",
    )
    svc.suppressions.add(
        "sms", "+14055550111", suppressed=True, reason="staff", actor="mara", at=svc.now()
    )
    campaign_id = apply_campaign(
        svc, texts_only_campaign(tmp_path), actor="test", approve=True
    ).campaign_id

    run_id = run_once(svc, campaign_id, 1)

    assert outcomes(svc, run_id) == [("skipped", "suppressed"), ("sent", None)]
    assert texts_to(svc, "+14055550111") == 0


def test_a_number_suppressed_after_fan_out_is_skipped_at_send_time(
    svc: Services, tmp_path: Path
) -> None:
    svc.patients.import_batches([[patient("P1", "+14055550111")]], dry_run=False, actor="test")
    campaign_id = apply_campaign(
        svc, texts_only_campaign(tmp_path), actor="test", approve=True
    ).campaign_id
    run_id = svc.runs.create(
        campaign_id,
        f"now:{svc.now().isoformat()}",
        "manual",
        RunState.FANNING_OUT,
        svc.now(),
        actor="test",
    )
    assert run_id is not None
    fanout.fan_out(svc, run_id)
    svc.suppressions.add(
        "sms", "+14055550111", suppressed=True, reason="stop", actor="patient", at=svc.now()
    )
    queue = svc.due
    assert isinstance(queue, MemoryDueQueue)
    for batch in queue.pop_due(svc.now() + timedelta(seconds=1)):
        delivery.send_batch(svc, batch)

    assert outcomes(svc, run_id) == [("skipped", "suppressed")]
    assert texts_to(svc, "+14055550111") == 0
