"""Behind the TLS proxy: the sign-in limit counts each client's address, not the proxy's,
when MERIDIAN_TRUSTED_PROXIES says how many proxies set X-Forwarded-For."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from campaigns import keys
from campaigns.services import Services
from campaigns.web import auth
from campaigns.web.app import create_app
from tests.conftest import make_settings

LIMIT = 3
FIRST, SECOND = "203.0.113.7", "198.51.100.9"


class CountingRedis:
    """The sign-in limit's Redis script, in Python: both counters checked, then counted."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def eval(self, script: str, numkeys: int, *args: object) -> int:
        user, address, max_user, max_from, window = (str(a) for a in args)
        if self.counts[user] >= int(max_user) or self.counts[address] >= int(max_from):
            return -int(window)
        self.counts[user] += 1
        self.counts[address] += 1
        return self.counts[user]


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> CountingRedis:
    monkeypatch.setattr(auth, "MAX_FAILED_FROM_ADDRESS", LIMIT)
    return CountingRedis()


def _services(tmp_path: Path, database_url: str, proxies: int, fake: CountingRedis) -> Services:
    svc = Services(make_settings(tmp_path, database_url=database_url, trusted_proxies=proxies))
    svc.db.upgrade()
    svc.__dict__["redis"] = fake  # the cached property's value
    return svc


@pytest.fixture
def behind_one_proxy(
    tmp_path: Path, database_url: str, counted: CountingRedis
) -> Iterator[FlaskClient]:
    svc = _services(tmp_path, database_url, 1, counted)
    yield create_app(svc).test_client()
    svc.close()


@pytest.fixture
def no_proxy(tmp_path: Path, database_url: str, counted: CountingRedis) -> Iterator[FlaskClient]:
    svc = _services(tmp_path, database_url, 0, counted)
    yield create_app(svc).test_client()
    svc.close()


def _fail_sign_in(client: FlaskClient, n: int, forwarded_for: str) -> int:
    page = client.get("/login").get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found
    form = {"csrf_token": found.group(1), "username": f"nobody{n}", "password": "wrong"}
    reply = client.post("/login", data=form, headers={"X-Forwarded-For": forwarded_for})
    return reply.status_code


def test_behind_a_trusted_proxy_failures_count_per_forwarded_address(
    behind_one_proxy: FlaskClient, counted: CountingRedis
) -> None:
    assert [_fail_sign_in(behind_one_proxy, n, FIRST) for n in range(LIMIT)] == [401] * LIMIT
    assert _fail_sign_in(behind_one_proxy, LIMIT, FIRST) == 429
    assert _fail_sign_in(behind_one_proxy, LIMIT + 1, SECOND) == 401  # another client
    assert counted.counts[keys.sign_in_failures_from(FIRST)] == LIMIT
    assert counted.counts[keys.sign_in_failures_from(SECOND)] == 1


def test_without_trusted_proxies_the_forwarded_header_is_ignored(
    no_proxy: FlaskClient, counted: CountingRedis
) -> None:
    # Anyone can send X-Forwarded-For: trusting it unasked would let one client
    # try without limit by changing it.
    assert [_fail_sign_in(no_proxy, n, FIRST) for n in range(LIMIT)] == [401] * LIMIT
    assert _fail_sign_in(no_proxy, LIMIT, SECOND) == 429
    assert counted.counts[keys.sign_in_failures_from(FIRST)] == 0
