"""The console's and the API's side of review and approval, the patient picker's JSON
endpoint and the profile page, through the Flask test client."""

from __future__ import annotations

import logging
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from campaigns.content import catalogue, copybook, review
from campaigns.domain.ports import Dispatcher
from campaigns.people.staff import Staff
from campaigns.sending.stubs import MemoryDispatcher
from campaigns.services import Services
from campaigns.web.app import create_app
from tests.support.factories import EXAMPLE_CAMPAIGN, add_patient, add_staff
from tests.test_copy import written
from tests.web.test_console import bearer, csrf_token, sign_in

NAME = "cold-and-flu-season"


@pytest.fixture
def settings_overrides(database_url: str) -> dict[str, object]:
    return {"database_url": database_url}


@pytest.fixture
def dispatcher() -> Dispatcher:
    return MemoryDispatcher()  # schedule writes its entry here, not to Redis


@pytest.fixture
def app(svc: Services) -> Flask:
    add_staff(svc, ada="admin", april="approver", mara="marketer", vic="viewer")
    catalogue.apply_campaign(svc, EXAMPLE_CAMPAIGN, actor="mara")
    return create_app(svc)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def test_the_api_submits_and_a_different_approver_approves_the_version_it_saw(
    client: FlaskClient, svc: Services
) -> None:
    mara, april = bearer(client, "mara"), bearer(client, "april")
    shown = client.get(f"/api/campaigns/{NAME}/review", headers=mara).json
    assert shown is not None and shown["state"] == "draft" and not shown["approved"]
    refused = client.post(f"/api/campaigns/{NAME}/schedule", headers=mara)
    assert refused.status_code == 422 and "not approved" in refused.json["error"]  # type: ignore[index]
    assert client.post(f"/api/campaigns/{NAME}/approve", headers=mara, json={}).status_code == 403
    submitted = client.post(f"/api/campaigns/{NAME}/submit", headers=mara).json
    assert submitted is not None and submitted["state"] == "submitted"
    stale = client.post(
        f"/api/campaigns/{NAME}/approve", headers=april, json={"fingerprint": "0" * 64}
    )
    assert stale.status_code == 422 and "changed while you were reviewing" in stale.json["error"]  # type: ignore[index]
    approved = client.post(
        f"/api/campaigns/{NAME}/approve",
        headers=april,
        json={"fingerprint": submitted["fingerprint"]},
    ).json
    assert approved is not None and approved["approved"] and approved["by"] == "april"
    assert client.post(f"/api/campaigns/{NAME}/schedule", headers=mara).status_code == 200


def test_the_two_person_rule_holds_on_the_api_too(client: FlaskClient) -> None:
    april = bearer(client, "april")
    client.post(f"/api/campaigns/{NAME}/submit", headers=april)
    own = client.post(f"/api/campaigns/{NAME}/approve", headers=april, json={})
    assert own.status_code == 422 and "two-person rule" in own.json["error"]  # type: ignore[index]
    back = client.post(f"/api/campaigns/{NAME}/send-back", headers=bearer(client, "ada"), json={})
    assert back.status_code == 422
    assert back.json["problems"] == [{"where": "comment", "reason": "is empty"}]  # type: ignore[index]


def test_a_marketer_cannot_approve_in_the_console_and_an_approver_sends_back_with_a_comment(
    client: FlaskClient,
) -> None:
    sign_in(client, "mara")
    token = csrf_token(client, f"/campaigns/{NAME}/review")
    client.post(f"/campaigns/{NAME}/submit", data={"csrf_token": token})
    assert client.post(f"/campaigns/{NAME}/approve", data={"csrf_token": token}).status_code == 403
    client.post("/logout", data={"csrf_token": token})
    sign_in(client, "april")
    token = csrf_token(client, f"/campaigns/{NAME}/review")
    reply = client.post(
        f"/campaigns/{NAME}/send-back",
        data={"csrf_token": token, "comment": "Name the clinic's hours, please."},
        follow_redirects=True,
    )
    page = reply.get_data(as_text=True)
    assert "sent back by april" in page and "Name the clinic&#39;s hours, please." in page


def test_the_picker_answers_json_for_staff_only_at_most_ten_and_logs_nothing(
    client: FlaskClient, svc: Services, caplog: pytest.LogCaptureFixture
) -> None:
    for n in range(12):
        add_patient(svc, f"P{n:02}", first_name="Maria", last_name=f"Lopez{n:02}")
    stranger = client.post("/patients/pick", json={"q": "maria"})
    assert stranger.status_code == 302  # to the login page
    sign_in(client, "vic")
    token = csrf_token(client, "/patients")
    caplog.set_level(logging.DEBUG)
    found = client.post(
        "/patients/pick", json={"q": "Maria Lo"}, headers={"X-CSRFToken": token}
    ).json
    assert found is not None and len(found["patients"]) == 10
    assert found["patients"][0] == {"external_id": "P00", "name": "Maria Lopez00", "state": "MA"}
    assert "maria" not in caplog.text.lower()


def test_the_profile_keeps_what_was_typed_and_names_the_bad_field(client: FlaskClient) -> None:
    sign_in(client, "mara")
    token = csrf_token(client, "/profile")
    bad = client.post(
        "/profile", data={"csrf_token": token, "phone": "(415) 555-0123", "email": "mara@"}
    )
    page = bad.get_data(as_text=True)
    assert bad.status_code == 422
    assert 'value="(415) 555-0123"' in page and "not a valid email address" in page
    good = client.post(
        "/profile",
        data={"csrf_token": token, "phone": "(415) 555-0123", "email": "mara@clinic.example"},
        follow_redirects=True,
    )
    assert 'value="+14155550123"' in good.get_data(as_text=True)


def test_the_console_refuses_to_schedule_or_run_a_campaign_nobody_approved(
    client: FlaskClient, svc: Services
) -> None:
    sign_in(client, "mara")
    page = client.get(f"/campaigns/{NAME}").get_data(as_text=True)
    assert ">Schedule it<" not in page and "Not submitted for approval yet" in page
    token = csrf_token(client, f"/campaigns/{NAME}")
    reply = client.post(
        f"/campaigns/{NAME}/schedule", data={"csrf_token": token}, follow_redirects=True
    )
    assert "not approved (not submitted for approval yet)" in reply.get_data(as_text=True)
    client.post(f"/campaigns/{NAME}/run", data={"csrf_token": token})
    assert svc.campaigns.get(NAME)["status"] == "draft"  # type: ignore[index]
    assert svc.runs.of_campaign(1) == []


def test_a_refused_test_send_says_why_once_in_words(client: FlaskClient) -> None:
    sign_in(client, "mara")
    token = csrf_token(client, f"/campaigns/{NAME}/try")
    page = client.post(
        f"/campaigns/{NAME}/test-send", data={"csrf_token": token, "channel": "sms"}
    ).get_data(as_text=True)
    assert "Test not sent: no phone on your profile to send the test to" in page
    assert "add it on your profile page" in page
    page = client.post(
        f"/campaigns/{NAME}/test-send", data={"csrf_token": token, "channel": "fax"}
    ).get_data(as_text=True)
    said = "Test not sent: &#39;fax&#39; is not a channel (sms or email)"
    assert said in page and page.count("is not a channel") == 1
    assert "(input:" not in page


def test_the_review_page_offers_no_approval_to_an_approver_who_changed_it_since_submission(
    client: FlaskClient, svc: Services
) -> None:
    review.submit(svc, NAME, staff=Staff("mara", "marketer"))
    copybook.save_copy(svc, NAME, written(), actor="april")
    sign_in(client, "april")
    page = client.get(f"/campaigns/{NAME}/review").get_data(as_text=True)
    assert "Approve this version" not in page
    assert "You changed it since it was submitted: another approver must approve it" in page


def test_the_review_page_shows_the_copy_that_is_sent_with_its_findings_marked(
    client: FlaskClient, svc: Services
) -> None:
    # Copy written in the console is what is approved and sent: the approver must see
    # it, not the templates folder the campaign started from.
    claim = written(sms=written().sms + " Ward off the flu.")  # type: ignore[operator]
    copybook.save_copy(svc, NAME, claim, actor="mara")
    sign_in(client, "april")
    page = client.get(f"/campaigns/{NAME}/review").get_data(as_text=True)
    assert "winter hours start Monday" in page
    assert "cold and flu season is here" not in page
    assert "<code>@copy/sms.txt.j2</code>" in page
    assert re.search(r"<mark [^>]*>.*Ward off the flu.*</mark>", page)
