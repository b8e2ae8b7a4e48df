"""Failed sign-ins are counted in the real Redis: after ten, the username is locked."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from campaigns import keys
from campaigns.people.staff import add_user
from campaigns.services import Services
from campaigns.web import auth
from campaigns.web.app import create_app

PASSWORD = "correct horse battery staple"


def _login(client: FlaskClient, username: str, password: str) -> tuple[int, str]:
    page = client.get("/login").get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found
    reply = client.post(
        "/login", data={"csrf_token": found.group(1), "username": username, "password": password}
    )
    return reply.status_code, reply.get_data(as_text=True)


def test_ten_failed_sign_ins_lock_the_username_even_for_the_right_password(
    svc: Services,
) -> None:
    add_user(svc, "ada", PASSWORD, "admin")
    add_user(svc, "mara", PASSWORD, "marketer")
    client = create_app(svc).test_client()
    statuses = [_login(client, "ada", f"guess {i}")[0] for i in range(auth.MAX_FAILED_SIGN_INS)]
    assert statuses == [401] * auth.MAX_FAILED_SIGN_INS

    status, page = _login(client, "ADA ", PASSWORD)  # the same name, however typed
    assert status == 429
    assert "Too many failed sign-ins" in page
    ttl = svc.redis.ttl(keys.sign_in_failures("ada"))
    assert 0 < ttl <= auth.SIGN_IN_WINDOW_S
    # The API refuses the same username too, and says when to come back.
    reply = client.post("/api/token", json={"username": "ada", "password": PASSWORD})
    assert reply.status_code == 429 and 0 < int(reply.headers["Retry-After"]) <= ttl
    # Another user is not affected.
    assert _login(client, "mara", PASSWORD)[0] == 302

    svc.redis.delete(keys.sign_in_failures("ada"))  # the window ends
    assert _login(client, "ada", PASSWORD)[0] == 302
