"""The console in a marketer's words: the campaign page and the preview page say what a
setting means and whom a preview is for, not the ledger's values."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from campaigns.domain.models import Heartbeats
from campaigns.domain.ports import Dispatcher
from campaigns.sending import control
from campaigns.sending.stubs import MemoryDispatcher
from campaigns.services import Services
from campaigns.web.app import create_app
from tests.support.factories import EXAMPLE_NAME, add_example_campaign, add_patient, add_staff
from tests.web.test_console import csrf_token, sign_in

NAME = EXAMPLE_NAME


@pytest.fixture
def settings_overrides(database_url: str) -> dict[str, object]:
    return {"database_url": database_url}


class NoAnswer(MemoryDispatcher):
    """Takes work, but its broker tells of no worker: as when Redis is away."""

    def heartbeats(self) -> Heartbeats | None:
        return None


@pytest.fixture
def dispatcher() -> Dispatcher:
    return NoAnswer()


@pytest.fixture
def app(svc: Services) -> Flask:
    add_staff(svc, mara="marketer")
    add_example_campaign(svc, approve=False)
    return create_app(svc)


def _approved(svc: Services) -> None:
    add_example_campaign(svc, approve=True)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _text(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


def test_the_campaign_page_says_which_channels_in_words(client: FlaskClient) -> None:
    sign_in(client, "mara")
    page = client.get(f"/campaigns/{NAME}").get_data(as_text=True)
    channels = re.search(r"<dt>Channels</dt><dd>(.*?)</dd>", page)
    assert channels  # (the YAML further down keeps the file's values)
    assert channels.group(1) == "SMS, email: every channel the patient consented to"


def test_a_patient_picked_by_name_is_named_on_the_preview(
    svc: Services, client: FlaskClient
) -> None:
    add_patient(svc, "P000002", first_name="Wei", last_name="Kowalski")
    sign_in(client, "mara")
    token = csrf_token(client, f"/campaigns/{NAME}/try")
    page = client.post(
        f"/campaigns/{NAME}/try", data={"csrf_token": token, "patient": "P000002"}
    ).get_data(as_text=True)
    text = _text(page)
    assert "What Wei Kowalski (P000002) would get" in text
    assert "SMS to Wei Kowalski (P000002)" in text
    assert "the real SMS and email providers" in text and "real sms" not in text
    # No phone on the profile yet: the button is off, and says where to add one.
    assert re.search(r"<button type=\"submit\" disabled>Send a test text</button>", page)
    assert "Add your phone on" in text


def test_a_submitted_draft_says_it_awaits_approval_on_the_clinics_clock(
    svc: Services, client: FlaskClient
) -> None:
    sign_in(client, "mara")
    token = csrf_token(client, f"/campaigns/{NAME}/review")
    assert client.post(f"/campaigns/{NAME}/submit", data={"csrf_token": token}).status_code == 302
    for path in (f"/campaigns/{NAME}", f"/campaigns/{NAME}/review"):
        page = client.get(path).get_data(as_text=True)
        badge = re.search(r'<h1>.*?<span class="status ([^"]+)">([^<]+)</span>', page, re.S)
        assert badge and badge.group(2) == "awaiting approval", path
        text = _text(page)
        # The same clock as the review history: the clinic's (America/New_York here).
        said = re.search(r"ubmitted for approval by mara on (\S+ \S+ [A-Z]+)", text)
        assert said and said.group(1).endswith(("EST", "EDT")), path


def test_a_run_page_says_in_words_how_it_started_and_that_nobody_is_sending(
    svc: Services, client: FlaskClient
) -> None:
    # Run now with no worker listening: the run is made, its fan-out waits in the queue.
    _approved(svc)
    control.schedule(svc, NAME, actor="mara")
    run_id = control.run_now(svc, NAME, actor="mara")
    assert run_id is not None
    sign_in(client, "mara")
    page = client.get(f"/runs/{run_id}").get_data(as_text=True)
    text = _text(page)
    assert "Started by hand (Run now)" in text and "now:" not in text
    assert "started by manual" not in text
    assert 'data-status="fanning_out">preparing the messages</span>' in page
    assert "The list of messages is still being prepared." in text
    assert "Nothing is being sent: the part of Meridian that sends messages" in text
    assert "For them:" in text  # the operator's sentence stays, below


def test_the_runs_table_says_how_a_run_started_in_words(svc: Services, client: FlaskClient) -> None:
    _approved(svc)
    control.schedule(svc, NAME, actor="mara")
    assert control.run_now(svc, NAME, actor="mara") is not None
    sign_in(client, "mara")
    for path in ("/", f"/campaigns/{NAME}"):
        row = re.search(
            r'<td><a href="/runs/\d+">#\d+</a></td>(.*?)</tr>',
            client.get(path).get_data(as_text=True),
            re.S,
        )
        assert row, path
        cells = [c.strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)]
        text = _text(" ".join(cells))
        assert "now (Run now)" in text and "by hand" in text, path
        assert "preparing the messages" in text and "fanning_out" not in text, path
