"""The inbox digest: counts and a link, sent once per batch of new replies, naming no
one; read back from the outbox's own log. The last digest is remembered in Redis, so
a private redis-server runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from campaigns.people import digest
from campaigns.people.inbound import InboundSms, handle_inbound
from campaigns.services import Services
from tests.conftest import make_settings
from tests.support.services import RedisServer

HOUSEHOLD = "+14055550100"


@pytest.fixture
def svc(tmp_path: Path, database_url: str) -> Iterator[Services]:
    with RedisServer() as server:
        settings = make_settings(
            tmp_path,
            database_url=database_url,
            redis_url=server.url,
            inbox_digest_to="frontdesk@clinic.example",
        )
        services = Services(settings)
        services.db.upgrade()
        yield services
        services.close()


def test_the_inbox_digest_counts_waiting_replies_once_and_names_no_one(svc: Services) -> None:
    assert digest.send_digest(svc) == 0  # nothing waits
    handle_inbound(svc, InboundSms("SM1", HOUSEHOLD, "Can I book Tuesday at 3?"))
    handle_inbound(svc, InboundSms("SM2", "+14055550199", "I can't stop sneezing"))
    assert digest.send_digest(svc) == 2
    assert digest.send_digest(svc) == 0  # nothing new since
    handle_inbound(svc, InboundSms("SM3", HOUSEHOLD, "wrong number"))
    assert digest.send_digest(svc) == 3
    log = svc.settings.outbox_dir / "outbox.jsonl"
    mails = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(m["channel"], m["to"]) for m in mails] == [("email", "frontdesk@clinic.example")] * 2
    assert mails[0]["subject"] == "Inbox: 2 replies need a person"
    assert "1  booking requests" in mails[0]["body"]
    assert "/inbox" in mails[0]["body"]
    for mail in mails:
        for secret in (HOUSEHOLD, "Tuesday", "sneezing", "wrong number", "Sam"):
            assert secret not in mail["body"]
