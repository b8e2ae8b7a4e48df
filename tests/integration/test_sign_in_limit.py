"""Failed sign-ins are counted in the real Redis: after ten, the username is locked;
after fifty from one address, that address."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

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


def test_a_hundred_parallel_wrong_passwords_get_no_more_than_the_limit_checked(
    svc: Services,
) -> None:
    add_user(svc, "ada", PASSWORD, "admin")
    app = create_app(svc)
    start = threading.Barrier(100)

    def attempt(i: int) -> int:
        client = app.test_client()
        start.wait()
        reply = client.post("/api/token", json={"username": "ada", "password": f"guess {i}"})
        return reply.status_code

    with ThreadPoolExecutor(max_workers=100) as pool:
        statuses = list(pool.map(attempt, range(100)))
    checked = svc.reports.audit_page(action_prefix="staff.sign_in_failed", limit=1000)
    print(f"{statuses.count(401)} checked and refused, {statuses.count(429)} locked out")
    assert statuses.count(401) <= auth.MAX_FAILED_SIGN_INS
    assert len(checked) == statuses.count(401)
    assert statuses.count(401) + statuses.count(429) == 100


def test_one_address_trying_many_usernames_is_locked_out(svc: Services) -> None:
    add_user(svc, "ada", PASSWORD, "admin")
    client = create_app(svc).test_client()
    here = {"REMOTE_ADDR": "203.0.113.7"}
    for i in range(auth.MAX_FAILED_FROM_ADDRESS):
        reply = client.post(
            "/api/token", json={"username": f"user{i}", "password": "x"}, environ_base=here
        )
        assert reply.status_code == 401
    reply = client.post(
        "/api/token", json={"username": "ada", "password": PASSWORD}, environ_base=here
    )
    assert reply.status_code == 429
    elsewhere = {"REMOTE_ADDR": "198.51.100.9"}
    reply = client.post(
        "/api/token", json={"username": "ada", "password": PASSWORD}, environ_base=elsewhere
    )
    assert reply.status_code == 200


def test_right_passwords_do_not_use_up_the_limit(svc: Services) -> None:
    add_user(svc, "ada", PASSWORD, "admin")
    client = create_app(svc).test_client()
    for _ in range(auth.MAX_FAILED_SIGN_INS + 5):
        assert _login(client, "ada", PASSWORD)[0] == 302
