"""The studio's routes through Flask's test client: the form's live check, its refusal
in words, the YAML downloads and upload, the API's export."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient

from campaigns.content import catalogue, exchange
from campaigns.content.definitions import CampaignDefinition
from campaigns.domain.states import CampaignState
from campaigns.services import Services
from campaigns.web.app import create_app
from campaigns.web.views.studio_fields import form_values
from tests.support.factories import (
    EXAMPLE_CAMPAIGN,
    EXAMPLE_NAME,
    STAFF_PASSWORD,
    add_example_campaign,
    add_example_patients,
    add_staff,
)

EXAMPLE_YAML = EXAMPLE_CAMPAIGN.read_text()
FORM = {
    "name": "spring-visit",
    "channels": ["sms", "email"],
    "channel_policy": "all_consented",
    "templates": "cold-and-flu-season",
    "tags_any": ["herbal"],
    "tags_none": ["do-not-market"],
    "schedule_kind": "weekly",
    "weekdays": ["TU", "MO"],
    "send_time": "09:15",
    "grace_hours": "4",
    "frequency_cap_days": "7",
    "max_attempts": "5",
}


@pytest.fixture
def settings_overrides(database_url: str) -> dict[str, object]:
    return {"database_url": database_url}


@pytest.fixture
def client(svc: Services) -> FlaskClient:
    add_staff(svc, mara="marketer", vic="viewer")
    app: Flask = create_app(svc)
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    form = {"csrf_token": token.group(1), "username": "mara", "password": STAFF_PASSWORD}
    assert client.post("/login", data=form).status_code == 302
    return client


def _csrf(client: FlaskClient, path: str = "/campaigns/new") -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))
    assert found
    return found.group(1)


def test_the_live_check_counts_the_audience_and_reads_the_schedule_without_logging_names(
    svc: Services, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    add_example_patients(svc)
    caplog.set_level(logging.DEBUG)
    reply = client.post("/campaigns/form/check", data={**FORM, "csrf_token": _csrf(client)})

    assert reply.status_code == 200
    answer = reply.json
    assert answer is not None
    assert answer["errors"] == {}
    assert answer["schedule"]["text"] == (
        "Every week on Monday and Tuesday at 09:15 in each patient's time zone"
    )
    assert len(answer["schedule"]["next"]) == 3
    audience = answer["audience"]
    today = svc.now().date()
    assert audience["selected"] == svc.patients.count_audience(
        {"tags_any": ["herbal"], "tags_none": ["do-not-market"]}, today
    )
    excluded = sum(row["patients"] for row in audience["excluded"])
    assert 0 < audience["reached"] < audience["selected"] <= audience["reached"] + excluded
    names = [p["who"].split(" (")[0] for p in audience["sample_in"] + audience["sample_out"]]
    assert names and all(names)
    for record in caplog.records:
        assert not any(name in record.getMessage() for name in names)
    [event] = svc.reports.audit_page(action_prefix="patient.audience_sample")
    assert event["actor"] == "mara" and len(event["detail"]["ids"]) == len(names)


def test_a_bad_value_is_refused_in_words_and_the_form_keeps_what_was_typed(
    svc: Services, client: FlaskClient
) -> None:
    bad = {**FORM, "max_attempts": "lots", "day": "", "csrf_token": _csrf(client)}
    reply = client.post("/campaigns/form", data=bad)

    assert reply.status_code == 422
    page = reply.get_data(as_text=True)
    assert (
        'id="max_attempts-error" role="alert">Max attempts must be a whole number between 1 and 20'
        in page
    )
    assert 'value="lots"' in page and 'value="spring-visit"' in page
    assert 'value="MO" checked' in page and 'value="TU" checked' in page
    assert "Input should" not in page
    assert svc.campaigns.get("spring-visit") is None

    good = {**FORM, "csrf_token": _csrf(client)}
    saved = client.post("/campaigns/form", data=good)
    assert saved.status_code == 302
    row = svc.campaigns.get("spring-visit")
    assert row is not None
    assert row["definition"]["schedule"]["rrule"] == "FREQ=WEEKLY;BYDAY=MO,TU"
    assert row["definition"]["schedule"]["grace_hours"] == 4


def test_a_new_campaign_may_not_take_a_held_name_from_the_form(
    svc: Services, client: FlaskClient
) -> None:
    add_example_campaign(svc)
    reply = client.post(
        "/campaigns/form", data={**FORM, "name": EXAMPLE_NAME, "csrf_token": _csrf(client)}
    )
    assert reply.status_code == 422
    assert "A campaign named &#39;cold-and-flu-season&#39; exists" in reply.get_data(as_text=True)


def test_the_console_and_the_api_export_what_the_cli_does_and_the_console_imports_it(
    svc: Services, client: FlaskClient
) -> None:
    add_example_campaign(svc)
    everything = client.get("/campaigns.yaml")
    assert everything.status_code == 200
    assert everything.headers["Content-Disposition"] == 'attachment; filename="campaigns.yaml"'
    assert everything.get_data(as_text=True) == exchange.export_yaml(svc)
    one = client.get(f"/campaigns/{EXAMPLE_NAME}.yaml").get_data(as_text=True)
    assert [d["name"] for d in yaml.safe_load_all(one)] == [EXAMPLE_NAME]

    token = client.post("/api/token", json={"username": "vic", "password": STAFF_PASSWORD}).json
    assert token is not None
    api = client.get("/api/export/campaigns", headers={"Authorization": f"Bearer {token['token']}"})
    assert api.status_code == 200 and api.json == {
        "campaigns": [EXAMPLE_NAME],
        "yaml": exchange.export_yaml(svc),
    }

    # The file carries acknowledgements: a marketer's upload is refused whole; without
    # them it is saved (an admin acknowledges the findings on the review page).
    copy = one.replace(f"name: {EXAMPLE_NAME}", "name: flu-copy", 1)
    refused = client.post(
        "/campaigns/import",
        data={"csrf_token": _csrf(client), "file": (io.BytesIO(copy.encode()), "flu.yaml")},
        content_type="multipart/form-data",
    )
    assert refused.status_code == 422
    assert "only an admin acknowledges" in refused.get_data(as_text=True)
    assert svc.campaigns.get("flu-copy") is None
    data = yaml.safe_load(copy)
    data["compliance"]["acknowledged"] = []
    copy = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    uploaded = client.post(
        "/campaigns/import",
        data={"csrf_token": _csrf(client), "file": (io.BytesIO(copy.encode()), "flu.yaml")},
        content_type="multipart/form-data",
    )
    assert uploaded.status_code == 302
    row = svc.campaigns.get("flu-copy")
    assert row is not None and row["status"] == "draft"


def test_a_cancelled_campaign_whose_name_was_taken_again_keeps_its_own_page_and_runs(
    svc: Services, client: FlaskClient
) -> None:
    from campaigns.domain.states import CampaignState, RunState

    add_example_campaign(svc)
    old = svc.campaigns.get(EXAMPLE_NAME)
    assert old is not None
    run_id = svc.runs.create(
        old["id"], "2026-10-15", "schedule", RunState.MISSED, svc.now(), actor="t"
    )
    assert svc.campaigns.set_status(old["id"], CampaignState.CANCELLED, actor="test")
    add_example_campaign(svc)  # the same name, a new draft
    new = svc.campaigns.get(EXAMPLE_NAME)
    assert new is not None and new["id"] != old["id"]

    listing = client.get("/campaigns").get_data(as_text=True)
    assert f'href="/campaigns/id/{old["id"]}"' in listing
    assert f'href="/campaigns/{EXAMPLE_NAME}"' in listing
    old_page = client.get(f"/campaigns/id/{old['id']}").get_data(as_text=True)
    assert "cancelled" in old_page and f"id {old['id']}" in old_page
    assert f'href="/runs/{run_id}"' in old_page
    assert "Edit</a>" not in old_page
    new_page = client.get(f"/campaigns/{EXAMPLE_NAME}").get_data(as_text=True)
    assert "draft" in new_page and f'href="/runs/{run_id}"' not in new_page
    run_page = client.get(f"/runs/{run_id}").get_data(as_text=True)
    assert f'href="/campaigns/id/{old["id"]}"' in run_page


def test_the_api_refuses_a_bad_value_in_the_same_words_as_the_form(client: FlaskClient) -> None:
    token = client.post("/api/token", json={"username": "mara", "password": STAFF_PASSWORD}).json
    assert token is not None
    body = exchange.dump([{**yaml.safe_load(EXAMPLE_YAML), "limits": {"max_attempts": "lots"}}])
    reply = client.post(
        "/api/campaigns",
        data=body,
        content_type="application/yaml",
        headers={"Authorization": f"Bearer {token['token']}"},
    )
    assert reply.status_code == 422
    assert reply.json is not None
    assert reply.json["problems"] == [
        {
            "where": "request body: limits.max_attempts",
            "reason": "Max attempts must be a whole number between 1 and 20",
        }
    ]


def test_editing_an_archived_campaign_in_the_form_does_not_make_a_new_one(
    svc: Services, client: FlaskClient
) -> None:
    client.post("/campaigns/form", data={**FORM, "csrf_token": _csrf(client)})
    archived = svc.campaigns.get("spring-visit")
    assert archived is not None
    svc.campaigns.set_status(int(archived["id"]), CampaignState.ARCHIVED, actor="mara")
    edited = {**FORM, "description": "edited", "editing": "spring-visit"}
    reply = client.post("/campaigns/form", data={**edited, "csrf_token": _csrf(client)})
    assert reply.status_code == 422
    assert "archived: restore it" in reply.get_data(as_text=True)
    assert [c["id"] for c in svc.campaigns.all()] == [archived["id"]]


def test_editing_a_campaign_cannot_rename_it_over_another(
    svc: Services, client: FlaskClient
) -> None:
    add_example_campaign(svc)
    client.post("/campaigns/form", data={**FORM, "csrf_token": _csrf(client)})
    before = svc.campaigns.get(EXAMPLE_NAME)
    # The name field is read-only while editing; a crafted post must not overwrite.
    forged = {**FORM, "name": EXAMPLE_NAME, "editing": "spring-visit"}
    reply = client.post("/campaigns/form", data={**forged, "csrf_token": _csrf(client)})
    assert reply.status_code == 422
    assert "clone it" in reply.get_data(as_text=True)
    assert svc.campaigns.get(EXAMPLE_NAME) == before


def test_the_form_keeps_the_ledgers_acknowledgements_and_adds_none_of_its_own(
    svc: Services, client: FlaskClient
) -> None:
    # The form does not edit acknowledgements (an admin does, on the review page): a
    # stale or forged hidden field neither drops the ledger's nor adds any.
    add_example_campaign(svc)
    _, shipped = catalogue.load_campaign(svc, EXAMPLE_NAME)
    assert shipped.compliance.acknowledged
    edited = {**form_values_of(shipped), "description": "edited", "editing": EXAMPLE_NAME}
    stale = {**edited, "compliance": '{"acknowledged": []}', "csrf_token": _csrf(client)}
    assert client.post("/campaigns/form", data=stale).status_code == 302
    _, kept = catalogue.load_campaign(svc, EXAMPLE_NAME)
    assert kept.description == "edited" and kept.compliance == shipped.compliance

    forged = {**FORM, "compliance": json.dumps(shipped.compliance.model_dump(mode="json"))}
    assert (
        client.post("/campaigns/form", data={**forged, "csrf_token": _csrf(client)}).status_code
        == 302
    )
    _, new = catalogue.load_campaign(svc, "spring-visit")
    assert new.compliance.acknowledged == []


def form_values_of(definition: CampaignDefinition) -> dict[str, object]:
    """The form's fields as the edit page fills them, ready to post."""
    return {k: v for k, v in form_values(definition).items() if v not in (None, "")}
