"""Console sessions live on the server: signing out, disabling a user or the 12-hour
lifetime end them, whatever cookie a browser (or a thief) still holds."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert, select, update

from campaigns.people import staff as accounts
from campaigns.services import Services
from campaigns.store.tables import staff_sessions
from campaigns.web.app import create_app
from tests.conftest import make_settings

PASSWORD = "correct horse battery staple"


@pytest.fixture
def svc(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    monkeypatch.setattr(
        accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )
    services = Services(make_settings(tmp_path, database_url=database_url))
    services.db.upgrade()
    accounts.add_user(services, "ada", PASSWORD, "admin")
    yield services
    services.close()


def _csrf(client: FlaskClient, path: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))
    assert found, path
    return found.group(1)


def _signed_in(app: Flask) -> FlaskClient:
    client = app.test_client()
    form = {"csrf_token": _csrf(client, "/login"), "username": "ada", "password": PASSWORD}
    assert client.post("/login", data=form).status_code == 302
    assert client.get("/patients").status_code == 200
    return client


def _session_cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def _with_cookie(app: Flask, value: str) -> FlaskClient:
    client = app.test_client()
    client.set_cookie("session", value)
    return client


def _is_login_page(client: FlaskClient) -> bool:
    reply = client.get("/patients")
    return reply.status_code == 302 and reply.headers["Location"].startswith("/login")


def test_a_cookie_captured_before_logout_gets_the_login_page(svc: Services) -> None:
    app = create_app(svc)
    client = _signed_in(app)
    captured = _session_cookie(client)
    assert not _is_login_page(_with_cookie(app, captured))  # it worked before
    assert client.post("/logout", data={"csrf_token": _csrf(client, "/patients")}).status_code
    assert _is_login_page(_with_cookie(app, captured))


def test_disabling_a_user_ends_every_session_of_theirs_at_once(svc: Services) -> None:
    app = create_app(svc)
    first, second = _signed_in(app), _signed_in(app)
    said = accounts.change_user(svc, "ada", actor="test", active=False)
    assert "disabled" in said
    assert _is_login_page(first) and _is_login_page(second)
    accounts.change_user(svc, "ada", actor="test", active=True)
    assert _is_login_page(first)  # enabling does not bring a session back
    events = [e["action"] for e in svc.reports.audit_page(action_prefix="staff.")]
    assert "staff.disable" in events and "staff.enable" in events


def test_a_session_ends_after_twelve_hours_however_active(svc: Services) -> None:
    app = create_app(svc)
    client = _signed_in(app)
    with svc.db.begin() as conn:
        long_ago = svc.now() - timedelta(hours=12, minutes=1)
        conn.execute(update(staff_sessions).values(created_at=long_ago, seen_at=svc.now()))
    assert _is_login_page(client)
    page = client.get("/login").get_data(as_text=True)
    assert "at most 12 hours" in page


def test_production_sets_secure_cookies_and_hsts(tmp_path: Path, svc: Services) -> None:
    settings = make_settings(
        tmp_path, database_url=svc.settings.database_url, env="production"
    )  # http public URL: Secure is production's, not the URL's
    production = Services(settings)
    try:
        app = create_app(production)
        reply = app.test_client().get("/login", base_url="https://localhost")
        assert reply.headers["Strict-Transport-Security"].startswith("max-age=")
        cookie = reply.headers["Set-Cookie"]  # the CSRF token's session
        assert "Secure" in cookie and "HttpOnly" in cookie
    finally:
        production.close()


def test_an_admin_disables_a_user_in_the_console_and_their_session_ends(
    svc: Services,
) -> None:
    accounts.add_user(svc, "mara", PASSWORD, "marketer")
    app = create_app(svc)
    mara = app.test_client()
    form = {"csrf_token": _csrf(mara, "/login"), "username": "mara", "password": PASSWORD}
    assert mara.post("/login", data=form).status_code == 302
    assert mara.get("/users").status_code == 403  # admins only
    admin = _signed_in(app)
    page = admin.get("/users").get_data(as_text=True)
    assert "mara" in page and "marketer" in page
    csrf = _csrf(admin, "/users")
    done = admin.post("/users/mara/disable", data={"csrf_token": csrf}, follow_redirects=True)
    assert "Staff user mara is disabled" in done.get_data(as_text=True)
    assert _is_login_page(mara)
    admin.post("/users/mara/enable", data={"csrf_token": csrf})
    admin.post("/users/mara/role", data={"csrf_token": csrf, "role": "viewer"})
    assert svc.staff.get("mara")["role"] == "viewer"  # type: ignore[index]
    actions = {e["action"] for e in svc.reports.audit_page(actor="ada")}
    assert {"staff.disable", "staff.enable", "staff.role.viewer"} <= actions
    refused = admin.post("/users/ada/disable", data={"csrf_token": csrf}, follow_redirects=True)
    assert "cannot disable yourself" in refused.get_data(as_text=True)


EIGHT_HOURS_S = 8 * 60 * 60


@pytest.fixture(params=[-EIGHT_HOURS_S, EIGHT_HOURS_S], ids=["clock-8h", "clock+8h"])
def shifted(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str
) -> Iterator[Services]:
    """Services on a clock shifted as the demo's is (MERIDIAN_CLOCK_SHIFT_S)."""
    settings = make_settings(tmp_path, database_url=database_url, clock_shift_s=request.param)
    services = Services(settings)
    services.db.upgrade()
    accounts.add_user(services, "ada", PASSWORD, "admin")
    yield services
    services.close()


def _stamp(svc: Services, **ago: timedelta) -> None:
    """Set the session's stamps to these spans before Meridian's now."""
    now = svc.now()
    with svc.db.begin() as conn:
        conn.execute(update(staff_sessions).values({k: now - v for k, v in ago.items()}))


def test_a_fresh_session_stays_signed_in_on_a_shifted_clock(shifted: Services) -> None:
    client = _signed_in(create_app(shifted))
    assert not _is_login_page(client)
    _stamp(shifted, seen_at=timedelta(minutes=14))
    assert not _is_login_page(client)  # 14 minutes idle by Meridian's clock: still in


def test_the_idle_limit_holds_on_meridians_clock(shifted: Services) -> None:
    client = _signed_in(create_app(shifted))
    _stamp(shifted, seen_at=timedelta(minutes=16))
    assert _is_login_page(client)
    assert "15 minutes without activity" in client.get("/login").get_data(as_text=True)


def test_the_twelve_hour_limit_holds_on_meridians_clock(shifted: Services) -> None:
    client = _signed_in(create_app(shifted))
    _stamp(shifted, created_at=timedelta(hours=11, minutes=59), seen_at=timedelta(0))
    assert not _is_login_page(client)
    _stamp(shifted, created_at=timedelta(hours=12, minutes=1), seen_at=timedelta(0))
    assert _is_login_page(client)
    assert "at most 12 hours" in client.get("/login").get_data(as_text=True)


def test_signing_in_removes_stale_sessions_and_keeps_live_ones(shifted: Services) -> None:
    accounts.add_user(shifted, "mara", PASSWORD, "marketer")
    now = shifted.now()
    rows = {
        "idle": (now - timedelta(hours=1), now - timedelta(minutes=16)),
        "old": (now - timedelta(hours=12, minutes=1), now),
        "live": (now - timedelta(hours=1), now - timedelta(minutes=1)),
    }
    with shifted.db.begin() as conn:
        for sid, (created, seen) in rows.items():
            conn.execute(
                insert(staff_sessions).values(
                    id=sid, username="mara", created_at=created, seen_at=seen
                )
            )
    _signed_in(create_app(shifted))
    with shifted.db.connect() as conn:
        left = set(conn.execute(select(staff_sessions.c.id)).scalars())
    assert "idle" not in left and "old" not in left
    assert "live" in left and len(left) == 2  # mara's live one and ada's new one


@pytest.mark.parametrize(
    "target",
    [
        "/\\evil.com",  # a browser reads the backslash as a slash: //evil.com
        "/\\/evil.com",
        "\\\\evil.com",
        "//evil.com",
        "/\t/evil.com",  # browsers drop tabs and line breaks in URLs
        "/\n/evil.com",
        "https://evil.com/",
        "evil.com",
    ],
)
def test_sign_in_never_redirects_to_another_host(svc: Services, target: str) -> None:
    client = create_app(svc).test_client()
    form = {"csrf_token": _csrf(client, "/login"), "username": "ada", "password": PASSWORD}
    reply = client.post("/login", data={**form, "next": target})
    assert reply.status_code == 302
    assert reply.headers["Location"] == "/"


def test_sign_in_returns_to_the_page_asked_for(svc: Services) -> None:
    client = create_app(svc).test_client()
    form = {"csrf_token": _csrf(client, "/login"), "username": "ada", "password": PASSWORD}
    reply = client.post("/login", data={**form, "next": "/patients?page=2"})
    assert reply.headers["Location"] == "/patients?page=2"
