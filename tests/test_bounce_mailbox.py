"""Bounces through a real IMAP mailbox: dovecot started here, `meridian mail poll`
typed as the README says, and the next run skipping the addresses with the reason.

Run one emails four patients (outbox transport, sending in this process, Redis for
fan-out's lock). The RFCs' example reports about three of them are delivered into
dovecot with IMAP APPEND, beside an out-of-office reply; the poll suppresses the
hard bounce and the complaint, counts the soft bounce, marks all four messages
\\Seen, and a second poll reads nothing. Run two skips the two with their reasons.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from campaigns.cli.main import app
from campaigns.content.catalogue import apply_campaign
from campaigns.domain.models import ConsentFact, PatientRecord
from campaigns.domain.states import SkipReason
from campaigns.domain.words import skip_words
from campaigns.sending.stubs import MemoryDispatcher, MemoryDueQueue
from campaigns.services import Services
from campaigns.store.tables import deliveries
from tests.conftest import CLINIC, ROOT, make_settings
from tests.support.bounces import report, verp_of
from tests.support.dovecot import DovecotServer
from tests.support.services import RedisServer
from tests.support.workers import shift_into_window
from tests.test_per_number import outcomes, run_once

SHIPPED = ROOT / "examples/campaigns/cold-and-flu-season.yaml"
SIGNED_UP = datetime(2024, 3, 1, 15, 0, tzinfo=UTC)
runner = CliRunner()


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    server = RedisServer().start()
    yield server.url
    server.stop()


@pytest.fixture
def imap() -> Iterator[DovecotServer]:
    with DovecotServer() as server:
        yield server


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


def emailed(external_id: str) -> PatientRecord:
    return PatientRecord(
        external_id,
        "Sam",
        external_id,
        f"{external_id.lower()}@example.net",
        None,
        "America/New_York",
        "MA",
        ("active",),
        None,
        None,
        "email",
        (ConsentFact("email", True, SIGNED_UP, "intake-form", "I agree to emails"),),
    )


def email_only_campaign(tmp_path: Path) -> Path:
    data: dict[str, Any] = yaml.safe_load(SHIPPED.read_text())
    data["name"] = "bounce-test"
    data["channels"] = ["email"]
    data["audience"] = {}
    data["limits"]["frequency_cap_days"] = 0
    path = tmp_path / "bounce.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def poll(monkeypatch: pytest.MonkeyPatch, svc: Services, imap: DovecotServer) -> dict[str, Any]:
    """`meridian mail poll --json`, with the settings in the environment as a person has."""
    monkeypatch.setenv("MERIDIAN_DATABASE_URL", svc.settings.database_url)
    monkeypatch.setenv("MERIDIAN_BOUNCE_IMAP_URL", imap.url())
    for key, value in CLINIC.items():
        monkeypatch.setenv(f"MERIDIAN_{key.upper()}", value)
    result = runner.invoke(app, ["mail", "poll", "--json"])
    assert result.exit_code == 0, result.output
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def test_reports_in_the_mailbox_suppress_and_the_next_run_skips_with_the_reason(
    svc: Services, imap: DovecotServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = ["HARD", "ABUSE", "SOFT", "FINE"]
    svc.patients.import_batches([[emailed(i) for i in ids]], dry_run=False, actor="test")
    campaign_id = apply_campaign(
        svc, email_only_campaign(tmp_path), actor="test", approve=True
    ).campaign_id
    first = run_once(svc, campaign_id, 1)
    assert outcomes(svc, first) == [("sent", None)] * 4
    delivery = _deliveries(svc, first)
    by_name = {i: delivery[svc.patients.find(i).patient_id] for i in ids}  # type: ignore[union-attr]

    imap.append(report("dsn-hard", verp_to=verp_of(svc, by_name["HARD"]), report_id="h@mta"))
    imap.append(report("arf-abuse", verp_to=verp_of(svc, by_name["ABUSE"]), report_id="a@fbl"))
    imap.append(report("dsn-soft", verp_to=verp_of(svc, by_name["SOFT"]), report_id="s@mta"))
    imap.append(b"Subject: Out of office\r\nMessage-ID: <ooo@example.net>\r\n\r\nBack Monday.\r\n")

    done = poll(monkeypatch, svc, imap)
    assert done["read"] == 4
    assert done["decisions"] == {
        "complaint:suppressed": 1,
        "hard:suppressed": 1,
        "other:ignored": 1,
        "soft:counted": 1,
    }
    assert all("\\Seen" in flags for flags in imap.flags())
    assert poll(monkeypatch, svc, imap)["read"] == 0

    hard = svc.suppressions.current("email", "hard@example.net")
    abuse = svc.suppressions.current("email", "abuse@example.net")
    assert hard is not None and hard.reason == "bounce" and "h@mta" in (hard.evidence or "")
    assert abuse is not None and abuse.reason == "complaint"
    assert svc.suppressions.current("email", "soft@example.net") is None

    second = run_once(svc, campaign_id, 2)
    assert outcomes(svc, second) == [
        ("skipped", SkipReason.BOUNCED),
        ("skipped", SkipReason.COMPLAINED),
        ("sent", None),
        ("sent", None),
    ]
    assert "bounced" in skip_words(SkipReason.BOUNCED)


def _deliveries(svc: Services, run_id: int) -> dict[int, int]:
    with svc.db.connect() as conn:
        rows = conn.execute(
            select(deliveries.c.patient_id, deliveries.c.id).where(deliveries.c.run_id == run_id)
        ).all()
    return {int(p): int(d) for p, d in rows}


def test_with_a_done_folder_read_reports_are_moved_there(
    svc: Services, imap: DovecotServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MERIDIAN_BOUNCE_IMAP_DONE_FOLDER", "Processed")
    imap.append(report("dsn-hard", report_id="moved@mta"))

    assert poll(monkeypatch, svc, imap)["decisions"] == {"hard:no-delivery": 1}

    assert imap.flags("INBOX") == []
    (moved,) = imap.flags("Processed")
    assert "\\Seen" in moved
    assert poll(monkeypatch, svc, imap)["read"] == 0
