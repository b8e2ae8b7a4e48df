"""The console in a marketer's words: the campaign page and the preview page say what a
setting means and whom a preview is for, not the ledger's values."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from campaigns.services import Services
from campaigns.web.app import create_app
from tests.support.factories import EXAMPLE_NAME, add_example_campaign, add_patient, add_staff
from tests.web.test_console import csrf_token, sign_in

NAME = EXAMPLE_NAME


@pytest.fixture
def settings_overrides(database_url: str) -> dict[str, object]:
    return {"database_url": database_url}


@pytest.fixture
def app(svc: Services) -> Flask:
    add_staff(svc, mara="marketer")
    add_example_campaign(svc, approve=False)
    return create_app(svc)


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
