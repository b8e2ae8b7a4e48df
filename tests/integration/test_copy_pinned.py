"""A run sends the copy it started with, through a real Celery worker, even when
staff save a newer version while it is under way."""

from __future__ import annotations

from campaigns.content import approval, catalogue, copybook
from campaigns.content.copy import Copy
from campaigns.sending import control, runs
from campaigns.services import Services
from campaigns.transports.outbox import read_outbox
from tests.support.factories import add_examples
from tests.support.waiting import wait_until
from tests.support.workers import Workers


def copy(word: str) -> Copy:
    return Copy(
        sms=f"{{{{ clinic.name }}}}: {word} hours for {{{{ patient.first_name or 'you' }}}}. "
        "Reply STOP to opt out",
        subject=f"{word} hours at {{{{ clinic.name }}}}",
        body=f"Hi {{{{ patient.first_name or 'there' }}}},\n\nOur **{word} hours** start Monday.",
        body_format="markdown",
    )


def approved(svc: Services, campaign: str) -> None:
    """An operator's approval of the campaign as it is now (a save lapses the last one)."""
    row, definition = catalogue.load_campaign(svc, campaign)
    approval.record_operator_approval(svc, int(row["id"]), definition, actor="test", via="test")


def test_a_run_sends_the_version_it_started_with_and_the_next_run_the_newer(
    svc: Services, workers: Workers
) -> None:
    campaign = add_examples(svc)
    first = copybook.save_copy(svc, campaign, copy("Winter"), actor="ana")
    approved(svc, campaign)
    run_id = control.run_now(svc, campaign, actor="test")
    assert run_id is not None
    run = svc.runs.get(run_id)
    assert run is not None and run["template_version_id"] == first.version["id"]
    # Staff save a newer version once the run has started, before anything is sent.
    newer = copybook.save_copy(svc, campaign, copy("Summer"), actor="ana")
    workers.start()

    def finished(run_id: int) -> bool:
        return runs.run_status(svc, run_id)["status"] == "finished"

    wait_until(lambda: finished(run_id), 120, "the first run to finish", workers.logs)
    sent = read_outbox(svc.settings.outbox_dir)
    sms = [m for m in sent if m["channel"] == "sms"]
    email = [m for m in sent if m["channel"] == "email"]
    assert sms and email
    assert all("Winter hours" in str(m["body"]) for m in sms)
    assert all(str(m["subject"]).startswith("Winter hours") for m in email)
    assert all("<strong>Winter hours</strong>" in str(m["html"]) for m in email)
    assert not any("Summer" in str(m) for m in sent)

    # The next run starts with the newer version (its patients are within the
    # frequency cap now, so it pins the version and sends nothing).
    approved(svc, campaign)
    second = control.run_now(svc, campaign, actor="test")
    assert second is not None
    second_run = svc.runs.get(second)
    assert second_run is not None and second_run["template_version_id"] == newer.version["id"]
