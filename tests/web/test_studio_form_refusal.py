"""The form's refusal when the chosen templates fail the compliance lint: what to fix
in words, each once, with no rule ids, template lines or a field count that marks
nothing."""

from __future__ import annotations

import html
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from campaigns.services import Services
from campaigns.web.app import create_app
from tests.support.factories import STAFF_PASSWORD, add_staff

FORM = {
    "name": "spring-flu",
    "channels": ["sms", "email"],
    "channel_policy": "all_consented",
    "templates": "cold-and-flu-season",
    "schedule_kind": "yearly",
    "month": "10",
    "day": "15",
    "send_time": "10:00",
    "grace_hours": "6",
    "frequency_cap_days": "7",
    "max_attempts": "5",
    "retry_base_s": "30",
}


@pytest.fixture
def settings_overrides(database_url: str) -> dict[str, object]:
    # A clinic set up without its phone and address: the example templates use both.
    return {"database_url": database_url, "clinic_phone": "", "clinic_address": ""}


@pytest.fixture
def client(svc: Services) -> FlaskClient:
    add_staff(svc, mara="marketer")
    app: Flask = create_app(svc)
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    form = {"csrf_token": token.group(1), "username": "mara", "password": STAFF_PASSWORD}
    assert client.post("/login", data=form).status_code == 302
    return client


def test_a_lint_refusal_lists_each_reason_once_in_words(svc: Services, client: FlaskClient) -> None:
    page = client.get("/campaigns/new").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    reply = client.post("/campaigns/form", data={**FORM, "csrf_token": token.group(1)})

    assert reply.status_code == 422
    box = re.search(r'<div class="problems".*?</div>', reply.get_data(as_text=True), re.S)
    assert box
    text = html.unescape(re.sub(r"<[^>]+>", " ", box.group(0)))
    assert "The campaign was not saved." in text
    assert "field" not in text  # no field is marked: none to count
    phone = "MERIDIAN_CLINIC_PHONE is empty"
    assert text.count(phone) == 1  # said once, though several templates use it
    assert "MERIDIAN_CLINIC_ADDRESS is empty" in text
    for jargon in ("clinic-setting-empty", ".j2:", "compliance lint refused", ".."):
        assert jargon not in text
    assert 'value="spring-flu"' in reply.get_data(as_text=True)  # what was typed stays
    assert svc.campaigns.get("spring-flu") is None
