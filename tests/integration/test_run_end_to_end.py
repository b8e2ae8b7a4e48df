"""The cold-and-flu campaign through real Redis and a real Celery worker process."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from campaigns.sending import control, runs
from campaigns.services import Services
from campaigns.transports.outbox import read_outbox
from tests.support.factories import add_examples
from tests.support.waiting import wait_until
from tests.support.workers import Workers


def test_a_run_now_reaches_every_consented_patient_exactly_once(
    svc: Services, workers: Workers, tmp_path: Path
) -> None:
    campaign = add_examples(svc)
    workers.start()
    run_id = control.run_now(svc, campaign, actor="test")
    assert run_id is not None

    def finished() -> bool:
        return runs.run_status(svc, run_id)["status"] == "finished"

    wait_until(finished, 120, "the run to finish", workers.logs)
    status = runs.run_status(svc, run_id)
    outbox = read_outbox(svc.settings.outbox_dir)
    sent = status["by_state"].get("sent", 0)
    assert sent > 0
    assert len(outbox) == sent
    per_delivery = Counter((m["delivery_id"], m["channel"]) for m in outbox)
    assert max(per_delivery.values()) == 1
    # Every recipient is accounted for: sent or skipped with a reason, nothing left.
    assert set(status["by_state"]) <= {"sent", "skipped"}
    assert sum(status["skipped_by_reason"].values()) == status["by_state"].get("skipped", 0)
    assert status["total"] == sent + status["by_state"].get("skipped", 0)
    # The messages are what the templates say, to whom the ledger says.
    sms = [m for m in outbox if m["channel"] == "sms"]
    email = [m for m in outbox if m["channel"] == "email"]
    assert sms and email
    assert all("Reply STOP to opt out" in str(m["body"]) for m in sms)
    assert all("/unsubscribe/" in str(m["html"]) for m in email)
    assert len(list((svc.settings.outbox_dir / "email").glob("*.eml"))) == len(email)


def test_starting_the_same_occurrence_twice_makes_one_run(svc: Services) -> None:
    campaign = add_examples(svc)
    first = runs.start_run(svc, campaign, occurrence="2027-10-15", trigger="schedule", actor="test")
    second = runs.start_run(
        svc, campaign, occurrence="2027-10-15", trigger="schedule", actor="beat-2"
    )
    assert first is not None
    assert second is None
