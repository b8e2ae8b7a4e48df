"""The console and the API through Flask's test client, on a SQLite file or PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from sqlalchemy import insert, select, update
from werkzeug.test import TestResponse

from campaigns.domain.states import DeliveryState, RunState, SkipReason
from campaigns.errors import InputError
from campaigns.people import staff as accounts
from campaigns.sending import control, runs
from campaigns.sending.stubs import MemoryDispatcher
from campaigns.services import Services
from campaigns.store.tables import inbound_messages, staff_sessions
from campaigns.web import auth, security
from campaigns.web.app import create_app
from campaigns.web.views.openapi import OPENAPI
from tasks.app import app as workers_app
from tasks.app import create_app as celery_app
from tasks.dispatcher import CeleryDispatcher
from tests.support.factories import (
    EXAMPLE_CAMPAIGN,
    EXAMPLE_NAME,
    EXAMPLE_PATIENTS,
    STAFF_PASSWORD,
    add_deliveries,
    add_example_campaign,
    add_examples,
    add_staff,
)
from tests.support.settings import ROOT

NAME = EXAMPLE_NAME
_ARG = re.compile(r"<(?:(\w+)(?:\(([^)]*)\))?:)?(\w+)>")


@pytest.fixture
def settings_overrides(database_url: str) -> dict[str, object]:
    return {"database_url": database_url}  # on SQLite a file, as the app server has


@pytest.fixture
def staff(svc: Services) -> None:
    add_staff(svc, ada="admin", mara="marketer", vic="viewer")


@pytest.fixture
def app(svc: Services, staff: None) -> Flask:
    return create_app(svc)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    page = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def sign_in(client: FlaskClient, username: str, password: str = STAFF_PASSWORD) -> None:
    reply = client.post(
        "/login",
        data={"csrf_token": csrf_token(client), "username": username, "password": password},
    )
    assert reply.status_code == 302, reply.get_data(as_text=True)


def bearer(client: FlaskClient, username: str) -> dict[str, str]:
    reply = client.post("/api/token", json={"username": username, "password": STAFF_PASSWORD})
    assert reply.status_code == 200, reply.json
    return {"Authorization": f"Bearer {reply.json['token']}"}  # type: ignore[index]


def example_url(rule: str) -> str:
    """A concrete URL for a rule: ids 1, names of the example campaign, first choices."""

    def fill(match: re.Match[str]) -> str:
        converter, options, _ = match.groups()
        if converter == "any":
            return options.split(",")[0].strip()
        return "1" if converter == "int" else NAME

    return _ARG.sub(fill, rule)


def guarded_routes(app: Flask) -> list[tuple[str, str, str]]:
    """(endpoint, method, url) of every route that needs a login or a token."""
    found = []
    for rule in app.url_map.iter_rules():
        # public., webhooks. and health. check their own proof (tests/web/test_public.py,
        # test_delivery_reports.py, test_health.py)
        if rule.endpoint in auth.OPEN_ENDPOINTS or rule.endpoint.startswith(
            ("public.", "webhooks.", "health.")
        ):
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((rule.endpoint, method, example_url(rule.rule)))
    return found


# who may come in -----------------------------------------------------------------------


def test_a_stranger_is_refused_on_every_console_and_api_route(
    app: Flask, client: FlaskClient, svc: Services
) -> None:
    add_examples(svc)
    routes = guarded_routes(app)
    assert len(routes) >= 25
    assert {e.split(".")[0] for e, _, _ in routes} == {"console", "api", "auth"}
    for endpoint, method, url in routes:
        reply = client.open(url, method=method)
        if url.startswith("/api/"):
            assert reply.status_code == 401, (endpoint, method, url)
            assert reply.headers["WWW-Authenticate"].startswith("Bearer")
        else:
            assert reply.status_code == 302, (endpoint, method, url)
            assert reply.headers["Location"].startswith("/login"), (endpoint, method, url)


def test_the_public_routes_and_the_login_page_need_no_login(client: FlaskClient) -> None:
    assert client.get("/login").status_code == 200
    with client.get("/static/console.css") as css:
        assert css.status_code == 200
    # The webhooks answer for themselves (a bad signature), never with a login page.
    assert client.post("/twilio/inbound").status_code != 302
    assert client.post("/webhooks/mailgun", json={}).status_code == 403


def test_a_stranger_on_an_htmx_request_is_sent_to_login_as_a_whole_page(
    client: FlaskClient,
) -> None:
    reply = client.get("/runs/1/progress", headers={"HX-Request": "true"})
    assert reply.status_code == 401
    assert reply.headers["HX-Redirect"].startswith("/login")


def test_login_with_a_wrong_password_fails_and_opens_no_session(client: FlaskClient) -> None:
    token = csrf_token(client)
    for username, password in (("mara", "not the password"), ("nobody", STAFF_PASSWORD)):
        reply = client.post(
            "/login", data={"csrf_token": token, "username": username, "password": password}
        )
        assert reply.status_code == 401
        assert "Wrong username or password." in reply.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_login_goes_back_to_the_page_asked_for_but_never_to_another_site(
    client: FlaskClient,
) -> None:
    token = csrf_token(client)
    form = {"csrf_token": token, "username": "mara", "password": STAFF_PASSWORD}
    reply = client.post("/login", data={**form, "next": "/campaigns"})
    assert reply.headers["Location"] == "/campaigns"
    for evil in ("//evil.example/x", "https://evil.example/", "javascript:alert(1)"):
        reply = client.post("/login", data={**form, "next": evil, "csrf_token": csrf_token(client)})
        assert reply.headers["Location"] == "/"


def _seen(svc: Services, ago: timedelta | None = None) -> timedelta:
    """How long ago the (one) session was last seen; set it to ``ago`` first if given."""
    with svc.db.begin() as conn:
        if ago is not None:
            conn.execute(update(staff_sessions).values(seen_at=svc.now() - ago))
        seen = conn.execute(select(staff_sessions.c.seen_at)).scalar_one()
    return svc.now() - seen


def test_an_idle_session_is_signed_out_after_15_minutes(client: FlaskClient, svc: Services) -> None:
    sign_in(client, "mara")
    assert client.get("/").status_code == 200
    _seen(svc, timedelta(minutes=14))
    assert client.get("/").status_code == 200  # still in, and the clock restarts
    assert _seen(svc) < timedelta(seconds=60)
    _seen(svc, timedelta(minutes=15, seconds=1))
    reply = client.get("/campaigns")
    assert reply.status_code == 302
    assert reply.headers["Location"].startswith("/login")
    assert client.get("/").status_code == 302  # and stays out
    assert "You were signed out after 15 minutes" in client.get("/login").get_data(as_text=True)


def test_a_poll_does_not_keep_an_idle_session_alive(client: FlaskClient, svc: Services) -> None:
    add_examples(svc)
    run_id = runs.start_run(svc, NAME, actor="test")
    sign_in(client, "mara")
    _seen(svc, timedelta(minutes=10))
    reply = client.get(
        f"/runs/{run_id}/progress", headers={"HX-Request": "true", auth.POLL_HEADER: "1"}
    )
    assert reply.status_code == 200
    assert _seen(svc) >= timedelta(minutes=10)


def test_a_signed_out_user_is_out(client: FlaskClient) -> None:
    sign_in(client, "vic")
    assert client.post("/logout", data={"csrf_token": csrf_token(client, "/")}).status_code == 302
    assert client.get("/").status_code == 302


def test_a_deactivated_user_is_out_at_the_next_request(client: FlaskClient, svc: Services) -> None:
    from sqlalchemy import update

    from campaigns.store.tables import staff_users

    sign_in(client, "mara")
    with svc.db.begin() as conn:
        conn.execute(
            update(staff_users).where(staff_users.c.username == "mara").values(active=False)
        )
    assert client.get("/").status_code == 302


# forged and forbidden writes ----------------------------------------------------------------


def test_a_form_post_without_its_csrf_token_is_refused(
    client: FlaskClient, app: Flask, svc: Services
) -> None:
    sign_in(client, "ada")  # the shipped file carries acknowledgements: an admin's to save
    text = EXAMPLE_CAMPAIGN.read_text()
    assert client.post("/campaigns", data={"definition": text}).status_code == 400
    other = app.test_client()
    stolen = csrf_token(other)  # a token from another session does not fit this one
    reply = client.post("/campaigns", data={"definition": text, "csrf_token": stolen})
    assert reply.status_code == 400
    assert svc.campaigns.all() == []
    assert (
        client.post(
            "/campaigns", data={"definition": text, "csrf_token": csrf_token(client, "/")}
        ).status_code
        == 302
    )
    assert [c["name"] for c in svc.campaigns.all()] == [NAME]


def test_a_login_post_without_its_csrf_token_is_refused(client: FlaskClient) -> None:
    reply = client.post("/login", data={"username": "mara", "password": STAFF_PASSWORD})
    assert reply.status_code == 400


def test_a_viewer_is_refused_on_every_post_that_changes_something(
    app: Flask, client: FlaskClient, svc: Services
) -> None:
    add_examples(svc)
    sign_in(client, "vic")
    token = csrf_token(client, "/")
    headers = bearer(client, "vic")
    refused = 0
    for endpoint, method, url in guarded_routes(app):
        if method == "GET" or security.role_of(app.view_functions[endpoint]) == "viewer":
            continue
        if url.startswith("/api/"):
            reply = client.open(url, method=method, headers=headers)
        else:
            reply = client.open(url, method=method, data={"csrf_token": token, "confirm": "yes"})
        assert reply.status_code == 403, (endpoint, method, url)
        refused += 1
    assert refused >= 10
    assert svc.campaigns.get(NAME)["status"] == "draft"  # type: ignore[index]


def test_only_reading_posts_are_open_to_viewers(app: Flask) -> None:
    open_to_viewers = {
        endpoint
        for endpoint, method, _ in guarded_routes(app)
        if method == "POST" and security.role_of(app.view_functions[endpoint]) == "viewer"
    }
    assert open_to_viewers == {
        "auth.logout",
        "console.patient_search",
        "console.campaign_preview",
        "console.patient_pick",
        "console.campaign_try",
        "console.profile_save",  # changes only the signed-in user's own phone and email
    }


def test_a_viewer_sees_no_buttons_that_change_anything(client: FlaskClient, svc: Services) -> None:
    add_examples(svc)
    sign_in(client, "vic")
    page = client.get(f"/campaigns/{NAME}").get_data(as_text=True)
    for label in ("Edit", "Schedule it", "Run now", "Cancel campaign"):
        assert f">{label}<" not in page
    assert "Import a patient CSV" not in client.get("/patients").get_data(as_text=True)
    assert "New campaign" not in client.get("/campaigns").get_data(as_text=True)
    assert client.get("/campaigns/new").status_code == 403


def test_a_marketer_sees_the_buttons_and_run_now_only_once_approved(
    client: FlaskClient, svc: Services
) -> None:
    add_examples(svc)
    sign_in(client, "mara")
    page = client.get(f"/campaigns/{NAME}").get_data(as_text=True)
    for label in ("Edit", "Schedule it", "Cancel campaign"):
        assert f">{label}<" in page
    assert ">Run now<" not in page
    token = csrf_token(client, f"/campaigns/{NAME}")
    refused = client.post(f"/campaigns/{NAME}/run", data={"csrf_token": token})
    assert refused.status_code == 302
    assert svc.runs.of_campaign(1) == []
    assert "Get the campaign approved and schedule it before running it." in client.get(
        f"/campaigns/{NAME}"
    ).get_data(as_text=True)


def test_sign_ins_and_new_users_are_audited(client: FlaskClient) -> None:
    sign_in(client, "mara")
    client.post(
        "/login", data={"csrf_token": csrf_token(client), "username": "vic", "password": "wrong"}
    )
    page = client.get("/audit").get_data(as_text=True)
    for action in ("staff.sign_in", "staff.sign_in_failed", "staff.add.viewer"):
        assert f"<td>{action}</td>" in page


def test_a_write_view_without_a_stated_role_stops_the_app_from_starting() -> None:
    from flask import Blueprint

    app = Flask(__name__)
    bp = Blueprint("console", __name__)

    @bp.post("/unguarded")
    def unguarded() -> str:
        return ""

    app.register_blueprint(bp)
    with pytest.raises(RuntimeError, match=r"console\.unguarded accepts writes without"):
        security.check_write_roles(app)


# users ------------------------------------------------------------------------------------


def test_add_user_hashes_the_password_with_argon2(svc: Services) -> None:
    accounts.add_user(svc, "new.person@example.org", STAFF_PASSWORD, "viewer")
    row = svc.staff.get("new.person@example.org")
    assert row is not None
    assert row["password_hash"].startswith("$argon2id$")
    assert STAFF_PASSWORD not in row["password_hash"]
    assert auth.authenticate(svc, "new.person@example.org", STAFF_PASSWORD) == accounts.Staff(
        "new.person@example.org", "viewer"
    )


def test_add_user_names_what_is_wrong(svc: Services, staff: None) -> None:
    with pytest.raises(InputError) as caught:
        accounts.add_user(svc, "Bad Name", "short", "owner")
    assert [p.where for p in caught.value.problems] == ["username", "role", "password"]
    with pytest.raises(InputError, match="already exists"):
        accounts.add_user(svc, "mara", STAFF_PASSWORD, "viewer")


# pages ---------------------------------------------------------------------------------------


def test_a_patient_csv_upload_reports_what_it_did(client: FlaskClient, svc: Services) -> None:
    sign_in(client, "mara")
    token = csrf_token(client, "/patients")
    with EXAMPLE_PATIENTS.open("rb") as f:
        reply = client.post(
            "/patients/import",
            data={"csrf_token": token, "file": (f, "patients.csv")},
            content_type="multipart/form-data",
        )
    page = reply.get_data(as_text=True)
    assert reply.status_code == 200
    assert "Import of patients.csv" in page
    assert svc.patients.count() == 1000


def test_a_bad_patient_csv_is_refused_row_by_row(client: FlaskClient, svc: Services) -> None:
    sign_in(client, "mara")
    token = csrf_token(client, "/patients")
    with (ROOT / "examples/patients-with-errors.csv").open("rb") as f:
        reply = client.post(
            "/patients/import",
            data={"csrf_token": token, "file": (f, "with-errors.csv")},
            content_type="multipart/form-data",
        )
    page = reply.get_data(as_text=True)
    assert reply.status_code == 422
    assert "nothing was imported" in page
    assert re.search(r"<td>row \d+, column \w+</td>", page)
    assert "/tmp" not in page and "meridian-upload" not in page
    assert svc.patients.count() == 0


def test_search_finds_a_patient_and_shows_the_consent_history(
    client: FlaskClient, svc: Services
) -> None:
    add_examples(svc)
    sign_in(client, "vic")
    token = csrf_token(client, "/patients")
    reply = client.post(
        "/patients/search",
        data={"csrf_token": token, "q": "P000002"},
        headers={"HX-Request": "true"},
    )
    page = reply.get_data(as_text=True)
    assert "Kowalski, Wei" in page and "<html" not in page
    patient_id = svc.patients.find("P000002").patient_id  # type: ignore[union-attr]
    assert f'href="/patients/{patient_id}"' in page
    by_name = client.post("/patients/search", data={"csrf_token": token, "q": "kowal"})
    assert "P000002" in by_name.get_data(as_text=True)
    detail = client.get(f"/patients/{patient_id}").get_data(as_text=True)
    assert "Consent history" in detail
    assert detail.count("granted") == 2 and "web-form" in detail


def test_a_campaign_saved_from_yaml_shows_its_findings_and_next_sends(
    client: FlaskClient, svc: Services
) -> None:
    sign_in(client, "ada")  # the file's acknowledgements are an admin's to add
    token = csrf_token(client, "/campaigns/new")
    reply = client.post(
        "/campaigns", data={"csrf_token": token, "definition": EXAMPLE_CAMPAIGN.read_text()}
    )
    assert reply.headers["Location"] == f"/campaigns/{NAME}"
    page = client.get(f"/campaigns/{NAME}").get_data(as_text=True)
    assert "draft" in page and "Next sends" in page and "-10-15" in page
    assert "flu" in page  # the acknowledged finding is listed
    audit = client.get("/audit").get_data(as_text=True)
    assert "campaign.create" in audit and "ada" in audit


def test_a_marketers_new_acknowledgement_is_refused_and_nothing_is_saved(
    client: FlaskClient, svc: Services
) -> None:
    sign_in(client, "mara")
    token = csrf_token(client, "/campaigns/new")
    text = EXAMPLE_CAMPAIGN.read_text()
    reply = client.post("/campaigns", data={"csrf_token": token, "definition": text})
    assert reply.status_code == 422
    page = reply.get_data(as_text=True)
    assert "compliance.acknowledged[0]" in page
    assert "only an admin acknowledges a finding" in page
    assert svc.campaigns.all() == []
    api = client.post(
        "/api/campaigns",
        data=text,
        headers={**bearer(client, "mara"), "Content-Type": "application/yaml"},
    )
    assert api.status_code == 422 and svc.campaigns.all() == []
    # once an admin saved them, the marketer's edit that keeps them is fine
    add_example_campaign(svc)
    edited = text.replace("last_visit_within_days: 730", "last_visit_within_days: 365", 1)
    again = client.post("/campaigns", data={"csrf_token": token, "definition": edited})
    assert again.status_code == 302


def test_a_bad_definition_is_refused_with_the_field_that_is_wrong(client: FlaskClient) -> None:
    sign_in(client, "mara")
    token = csrf_token(client, "/campaigns/new")
    text = EXAMPLE_CAMPAIGN.read_text().replace("FREQ=YEARLY", "FREQ=YEARLYY")
    reply = client.post("/campaigns", data={"csrf_token": token, "definition": text})
    assert reply.status_code == 422
    page = reply.get_data(as_text=True)
    assert "schedule.rrule" in page
    assert "YEARLYY" in page  # the textarea keeps what was typed
    broken = client.post("/campaigns", data={"csrf_token": token, "definition": "name: [x"})
    assert broken.status_code == 422 and "not valid YAML" in broken.get_data(as_text=True)


def test_the_live_preview_renders_each_channel_with_segments_and_lint(
    client: FlaskClient, svc: Services
) -> None:
    add_examples(svc)
    sign_in(client, "vic")  # a preview changes nothing, so a viewer may ask for one
    token = csrf_token(client, "/campaigns")
    reply = client.post(
        "/campaigns/preview",
        data={
            "csrf_token": token,
            "definition": EXAMPLE_CAMPAIGN.read_text(),
            "patient": "P000002",
        },
        headers={"HX-Request": "true"},
    )
    page = reply.get_data(as_text=True)
    assert reply.status_code == 200
    assert "SMS to P000002" in page and "Email to P000002" in page
    assert re.search(r"\d+ segments? ·\s+(GSM-7|UCS-2)", page)
    assert "Wei" in page and "Reply STOP" in page
    assert 'sandbox=""' in page  # the email's HTML cannot run scripts
    assert "Compliance lint" in page
    missing = client.post(
        "/campaigns/preview",
        data={
            "csrf_token": token,
            "definition": EXAMPLE_CAMPAIGN.read_text(),
            "patient": "P999999",
        },
        headers={"HX-Request": "true"},
    )
    assert "no patient with that external_id" in missing.get_data(as_text=True)


def test_the_run_page_shows_counts_and_a_marketer_can_pause_and_cancel(
    client: FlaskClient, svc: Services
) -> None:
    add_examples(svc)
    run_id = runs.start_run(svc, NAME, actor="test")
    assert run_id is not None
    add_deliveries(svc, run_id, [1], channel="sms")
    add_deliveries(
        svc,
        run_id,
        [2],
        channel="email",
        state=DeliveryState.SKIPPED,
        skip_reason=SkipReason.NO_CONSENT,
    )
    svc.runs.set_status(run_id, RunState.RUNNING, svc.now(), actor="test")
    sign_in(client, "mara")
    page = client.get(f"/runs/{run_id}").get_data(as_text=True)
    assert 'hx-trigger="every 2s"' in page and "no_consent" in page
    token = csrf_token(client, f"/runs/{run_id}")
    client.post(f"/runs/{run_id}/pause", data={"csrf_token": token})
    assert runs.run_status(svc, run_id)["status"] == "paused"
    client.post(f"/runs/{run_id}/cancel", data={"csrf_token": token})  # not confirmed
    assert runs.run_status(svc, run_id)["status"] == "paused"
    client.post(f"/runs/{run_id}/cancel", data={"csrf_token": token, "confirm": "yes"})
    status = runs.run_status(svc, run_id)
    assert status["status"] == "cancelled"
    assert status["skipped_by_reason"] == {"no_consent": 1, "cancelled": 1}
    final = client.get(f"/runs/{run_id}/progress").get_data(as_text=True)
    assert "hx-trigger" not in final  # a finished run stops polling


def test_the_dashboard_charts_messages_per_day_by_outcome(
    client: FlaskClient, svc: Services
) -> None:
    add_examples(svc)
    run_id = runs.start_run(svc, NAME, actor="test")
    assert run_id is not None
    today = svc.now().date()
    add_deliveries(
        svc,
        run_id,
        [1, 2, 3],
        channel="sms",
        state=DeliveryState.SKIPPED,
        skip_reason=SkipReason.OPTED_OUT,
    )
    sign_in(client, "vic")
    page = client.get("/").get_data(as_text=True)
    assert f"{today}: 3 messages, 3 skipped" in page
    assert "Recent runs" in page and f"#{run_id}" in page


def test_flagged_inbound_messages_can_be_marked_done_in_the_inbox(
    client: FlaskClient, svc: Services
) -> None:
    add_examples(svc)
    with svc.db.begin() as conn:
        conn.execute(
            insert(inbound_messages).values(
                provider_sid="SM1",
                from_phone="+15085550100",
                body="please don't text me again",
                patient_id=1,
                kind="revocation",
                flagged=True,
                received_at=datetime.now(UTC),
            )
        )
    sign_in(client, "mara")
    assert client.get("/inbound").headers["Location"].endswith("/inbox?view=review")
    page = client.get("/inbox").get_data(as_text=True)
    assert "please don&#39;t text me again" in page
    assert '<span class="count" aria-label="1 need a person">1</span>' in page
    token = csrf_token(client, "/inbox/1")
    assert client.post("/inbox/1/done", data={"csrf_token": token}).status_code == 302
    page = client.get("/inbox").get_data(as_text=True)
    assert "Nothing waiting for a person" in page and 'class="count"' not in page
    assert "inbound.reviewed" in client.get("/audit").get_data(as_text=True)


def test_console_pages_are_not_cached_and_forbid_scripts_from_elsewhere(
    client: FlaskClient,
) -> None:
    sign_in(client, "vic")
    reply = client.get("/patients")
    assert reply.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in reply.headers["Content-Security-Policy"]


# the API ----------------------------------------------------------------------------------------


def test_the_api_applies_lists_and_shows_a_campaign(client: FlaskClient, svc: Services) -> None:
    headers = bearer(client, "ada")  # the file's acknowledgements are an admin's to add
    reply = client.post(
        "/api/campaigns",
        data=EXAMPLE_CAMPAIGN.read_bytes(),
        headers={**headers, "Content-Type": "application/yaml"},
    )
    assert reply.status_code == 200, reply.json
    assert reply.json["name"] == NAME  # type: ignore[index]
    listed = client.get("/api/campaigns", headers=headers).json
    assert [c["name"] for c in listed["campaigns"]] == [NAME]  # type: ignore[index]
    shown = client.get(f"/api/campaigns/{NAME}", headers=headers).json
    assert shown["status"] == "draft" and shown["next_sends"]  # type: ignore[index]
    assert client.get("/api/campaigns/nope", headers=headers).status_code == 404


def test_the_api_names_the_field_of_a_bad_definition(client: FlaskClient) -> None:
    headers = bearer(client, "mara")
    text = EXAMPLE_CAMPAIGN.read_text().replace("channels: [sms, email]", "channels: [fax]")
    reply = client.post(
        "/api/campaigns", data=text, headers={**headers, "Content-Type": "application/yaml"}
    )
    assert reply.status_code == 422
    assert any(p["where"].endswith("channels[0]") for p in reply.json["problems"])  # type: ignore[index]


def test_the_api_imports_patients_and_reports_bad_rows(client: FlaskClient, svc: Services) -> None:
    headers = bearer(client, "mara")
    good = client.post(
        "/api/patients/import?dry_run=true",
        data=EXAMPLE_PATIENTS.read_bytes(),
        headers={**headers, "Content-Type": "text/csv"},
    )
    assert good.status_code == 200
    assert good.json["rows"] == 1000 and good.json["dry_run"] is True  # type: ignore[index]
    assert svc.patients.count() == 0
    bad = client.post(
        "/api/patients/import",
        data=(ROOT / "examples/patients-with-errors.csv").read_bytes(),
        headers={**headers, "Content-Type": "text/csv"},
    )
    assert bad.status_code == 422
    assert all(p["where"].startswith("row ") for p in bad.json["problems"])  # type: ignore[index]


def test_an_api_token_is_refused_when_forged_expired_or_for_a_changed_password(
    app: Flask, client: FlaskClient, svc: Services
) -> None:
    headers = bearer(client, "mara")
    assert client.get("/api/campaigns", headers=headers).status_code == 200
    # another first character of the signature (its last ones may carry padding bits,
    # and "xx" was once what the token already ended with)
    head, signature = headers["Authorization"].rsplit(".", 1)
    forged = f"{head}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"
    assert client.get("/api/campaigns", headers={"Authorization": forged}).status_code == 401
    assert (
        client.post("/api/token", json={"username": "mara", "password": "nope"}).status_code == 401
    )
    from sqlalchemy import update

    from campaigns.store.tables import staff_users

    with svc.db.begin() as conn:
        conn.execute(
            update(staff_users)
            .where(staff_users.c.username == "mara")
            .values(password_hash=accounts.hash_password("a brand new password"))
        )
    assert client.get("/api/campaigns", headers=headers).status_code == 401


def test_an_api_token_expires_after_an_hour(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = bearer(client, "mara")
    monkeypatch.setattr(auth, "TOKEN_MAX_AGE_S", -1)
    assert client.get("/api/campaigns", headers=headers).status_code == 401


def test_a_session_cookie_does_not_open_the_api(client: FlaskClient) -> None:
    sign_in(client, "mara")
    assert client.get("/api/campaigns").status_code == 401


def test_the_openapi_document_describes_every_api_route(app: Flask, client: FlaskClient) -> None:
    document = client.get("/api/openapi.json", headers=bearer(client, "vic")).json
    assert document == OPENAPI
    documented = {
        (path, method.upper()) for path, ops in OPENAPI["paths"].items() for method in ops
    }
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api."):
            path = re.sub(r"<(?:[^:>]+:)?(\w+)>", r"{\1}", rule.rule.removeprefix("/api"))
            for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
                if "{action}" in path:
                    continue  # one documented path per action
                assert (path, method) in documented, (path, method)


def _schema_of(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A schema with its $ref followed, for checking what it says."""
    ref = schema.get("$ref")
    if ref is None:
        return schema
    found: Any = document
    for part in ref.removeprefix("#/").split("/"):
        found = found[part]
    return _schema_of(document, found)


def test_the_openapi_document_is_valid_and_every_body_has_a_schema(client: FlaskClient) -> None:
    document = client.get("/api/openapi.json", headers=bearer(client, "vic")).json
    assert document is not None
    validate_openapi(document)  # raises on anything OpenAPI 3.1 does not allow
    with_body = set()
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            [ok] = [code for code in op["responses"] if code.startswith("2")]
            for kind, media in op["responses"][ok]["content"].items():
                reply = _schema_of(document, media["schema"])
                if kind == "text/csv":  # a download: the message log
                    assert reply.get("type") == "string", (path, method)
                    continue
                assert reply.get("type") == "object", (path, method)
                assert reply.get("properties") or reply.get("required"), (path, method)
            if "requestBody" in op:
                with_body.add((method, path))
                for media in op["requestBody"]["content"].values():
                    asked = _schema_of(document, media["schema"])
                    assert asked.get("type") in ("object", "string"), (path, method)
                    if asked["type"] == "object":
                        assert asked["properties"], (path, method)
    assert with_body == {
        ("post", "/token"),
        ("post", "/campaigns"),
        ("post", "/patients/import"),
        ("post", "/inbox/{message_id}/reply"),
        ("post", "/inbox/{message_id}/suppress"),
        ("post", "/patients/{patient_id}/consent/restore"),
        ("post", "/campaigns/{name}/approve"),
        ("post", "/campaigns/{name}/send-back"),
        ("patch", "/patients/{patient_id}"),
    }
    definition = document["paths"]["/campaigns"]["post"]["requestBody"]["content"]
    assert "channels" in _schema_of(document, definition["application/yaml"]["schema"])["required"]


def test_what_the_api_answers_matches_its_documented_schema(
    client: FlaskClient, svc: Services
) -> None:
    document = client.get("/api/openapi.json", headers=bearer(client, "mara")).json
    assert document is not None

    def check(path: str, method: str, reply: TestResponse) -> None:
        op = document["paths"][path][method]
        entry = op["responses"][str(reply.status_code)]
        schema = _schema_of(document, entry)["content"]["application/json"]["schema"]
        Draft202012Validator({**schema, "components": document["components"]}).validate(reply.json)

    headers = bearer(client, "mara")
    yaml_headers = {**headers, "Content-Type": "application/yaml"}
    applied = client.post(
        "/api/campaigns", data=EXAMPLE_CAMPAIGN.read_bytes(), headers=yaml_headers
    )
    check("/campaigns", "post", applied)
    check("/campaigns", "get", client.get("/api/campaigns", headers=headers))
    check("/campaigns/{name}", "get", client.get(f"/api/campaigns/{NAME}", headers=headers))
    check("/campaigns/{name}", "get", client.get("/api/campaigns/nope", headers=headers))
    imported = client.post(
        "/api/patients/import?skip_invalid=yes",
        data=(ROOT / "examples/patients-with-errors.csv").read_bytes(),
        headers={**headers, "Content-Type": "text/csv"},
    )
    assert imported.json["skipped"]  # type: ignore[index]
    check("/patients/import", "post", imported)
    add_example_campaign(svc)  # the same copy, approved by the operator
    run_id = runs.start_run(svc, NAME, actor="test")
    check("/runs/{run_id}", "get", client.get(f"/api/runs/{run_id}", headers=headers))
    paused = client.post(f"/api/runs/{run_id}/pause", headers=headers)
    check("/runs/{run_id}/pause", "post", paused)
    check("/token", "post", client.post("/api/token", json={"username": "mara"}))
    check(
        "/token",
        "post",
        client.post("/api/token", data={"username": "mara", "password": STAFF_PASSWORD}),
    )


def test_when_the_broker_does_not_answer_the_console_says_so_and_the_api_answers_503(
    svc: Services, staff: None
) -> None:
    add_examples(svc)
    # scheduled while Redis answered; a schedule that fails now leaves it as it was
    svc.dispatcher = MemoryDispatcher()
    control.schedule(svc, NAME, actor="test")
    nobody = svc.settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})  # refuses
    svc.dispatcher = CeleryDispatcher(celery_app(nobody))
    try:
        client = create_app(svc).test_client()
        sign_in(client, "mara")
        token = csrf_token(client, f"/campaigns/{NAME}")
        reply = client.post(f"/campaigns/{NAME}/schedule", data={"csrf_token": token})
        assert reply.status_code == 302
        page = client.get(f"/campaigns/{NAME}").get_data(as_text=True)
        said = "Schedule: the sending service is not answering, so nothing was queued or sent."
        assert said in page and "ask whoever runs Meridian to check Redis" in page
        assert svc.campaigns.get(NAME)["status"] == "scheduled"  # type: ignore[index]
        answer = client.post(f"/api/campaigns/{NAME}/run", headers=bearer(client, "mara"))
        assert answer.status_code == 503
        assert answer.json == {
            "error": "could not reach Redis (the broker); try again shortly",
            "problems": [],
        }
    finally:
        workers_app.set_current()  # the new Celery app made itself the current one
