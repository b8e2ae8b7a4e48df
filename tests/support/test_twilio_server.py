"""TwilioServer speaks enough of Twilio's Messages API for the real client."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from campaigns.settings import Settings
from campaigns.transports.twilio_sms import build_client
from tests.support.twilio_server import TwilioServer

ALICE = "+15417543010"
BOB = "+15417543011"
CLINIC = "+15005550006"
START = datetime(2025, 10, 15, 14, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def api(twilio: TwilioServer) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.auth = (twilio.account_sid, twilio.auth_token)
        yield session


def messages_url(server: TwilioServer) -> str:
    return f"{server.url}/2010-04-01/Accounts/{server.account_sid}/Messages.json"


def create(api: requests.Session, server: TwilioServer, to: str, body: str) -> dict[str, Any]:
    reply = api.post(messages_url(server), data={"To": to, "From": CLINIC, "Body": body}, timeout=5)
    assert reply.status_code == 201, reply.text
    created: dict[str, Any] = reply.json()
    return created


def listing(api: requests.Session, server: TwilioServer, query: str) -> list[str]:
    reply = api.get(f"{messages_url(server)}?{query}", timeout=5)
    assert reply.status_code == 200, reply.text
    return [m["body"] for m in reply.json()["messages"]]


@pytest.fixture
def three_days(twilio: TwilioServer, api: requests.Session) -> None:
    """Alice gets a message at 14:00 on 15, 16 and 17 Oct; Bob one on 16 Oct."""
    clock = Clock(START)
    twilio.clock = clock
    for day in range(3):
        clock.now = START + timedelta(days=day)
        create(api, twilio, ALICE, f"alice day {day}")
    clock.now = START + timedelta(days=1, minutes=1)
    create(api, twilio, BOB, "bob day 1")


@pytest.mark.usefixtures("three_days")
def test_the_list_filters_by_recipient_newest_first(
    twilio: TwilioServer, api: requests.Session
) -> None:
    assert listing(api, twilio, "To=%2B15417543010") == [
        "alice day 2",
        "alice day 1",
        "alice day 0",
    ]
    assert listing(api, twilio, "To=%2B15417543011") == ["bob day 1"]
    assert listing(api, twilio, "To=%2B15550000000") == []


@pytest.mark.usefixtures("three_days")
def test_date_sent_bounds_with_a_time_are_inclusive_to_the_second(
    twilio: TwilioServer, api: requests.Session
) -> None:
    # The real client sends date_sent_after as "DateSent>" and date_sent_before as
    # "DateSent<"; on the wire they read DateSent>=… and DateSent<=….
    day1 = "2025-10-16T14:00:00Z"
    assert listing(api, twilio, f"To=%2B15417543010&DateSent>={day1}") == [
        "alice day 2",
        "alice day 1",
    ]
    assert listing(api, twilio, f"To=%2B15417543010&DateSent<={day1}") == [
        "alice day 1",
        "alice day 0",
    ]
    assert listing(api, twilio, "DateSent%3E=2025-10-16T14:00:01Z") == ["alice day 2", "bob day 1"]


@pytest.mark.usefixtures("three_days")
def test_whole_day_date_sent_filters_cover_the_utc_day(
    twilio: TwilioServer, api: requests.Session
) -> None:
    assert listing(api, twilio, "DateSent=2025-10-16") == ["bob day 1", "alice day 1"]
    assert listing(api, twilio, "DateSent<=2025-10-15") == ["alice day 0"]
    assert listing(api, twilio, "DateSent>=2025-10-17") == ["alice day 2"]


@pytest.mark.usefixtures("three_days")
def test_the_twilio_client_sends_date_filters_the_server_understands(
    twilio: TwilioServer,
) -> None:
    client = build_client(
        Settings(  # type: ignore[call-arg]
            _env_file=None,
            twilio_account_sid=twilio.account_sid,
            twilio_auth_token=twilio.auth_token,
            twilio_api_url=twilio.url,
        )
    )
    after = START + timedelta(days=1)

    found = client.messages.list(to=ALICE, date_sent_after=after)

    assert [m.body for m in found] == ["alice day 2", "alice day 1"]
    client.http_client.session.close()


def test_pages_link_to_the_next_until_the_last(twilio: TwilioServer, api: requests.Session) -> None:
    for n in range(5):
        create(api, twilio, ALICE, f"message {n}")

    bodies: list[str] = []
    next_uri: str | None = "/2010-04-01/Accounts/{}/Messages.json?To=%2B15417543010&PageSize=2"
    pages = 0
    while next_uri:
        reply = api.get(twilio.url + next_uri.format(twilio.account_sid), timeout=5).json()
        assert reply["page_size"] == 2
        bodies += [m["body"] for m in reply["messages"]]
        next_uri = reply["next_page_uri"]
        pages += 1

    assert pages == 3
    assert bodies == [f"message {n}" for n in (4, 3, 2, 1, 0)]


def test_the_twilio_client_pages_through_every_message(twilio: TwilioServer) -> None:
    client = build_client(
        Settings(  # type: ignore[call-arg]
            _env_file=None,
            twilio_account_sid=twilio.account_sid,
            twilio_auth_token=twilio.auth_token,
            twilio_api_url=twilio.url,
        )
    )
    for n in range(5):
        client.messages.create(to=ALICE, from_=CLINIC, body=f"message {n}")

    found = client.messages.list(to=ALICE, page_size=2)

    assert [m.body for m in found] == [f"message {n}" for n in (4, 3, 2, 1, 0)]
    client.http_client.session.close()


def test_a_request_without_the_right_credentials_gets_401_with_code_20003(
    twilio: TwilioServer,
) -> None:
    for auth in (None, (twilio.account_sid, "wrong"), ("AC" + "9" * 32, twilio.auth_token)):
        reply = requests.get(messages_url(twilio), auth=auth, timeout=5)
        assert reply.status_code == 401
        assert reply.json()["code"] == 20003


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"To": "5417543010", "From": CLINIC, "Body": "hi"}, 21211),
        ({"To": ALICE, "Body": "hi"}, 21603),
        ({"To": ALICE, "From": CLINIC}, 21602),
        ({"From": CLINIC, "Body": "hi"}, 21604),
        ({"To": ALICE, "From": CLINIC, "Body": "x" * 1601}, 21617),
    ],
)
def test_create_refuses_what_twilio_refuses_with_a_twilio_shaped_error(
    twilio: TwilioServer, api: requests.Session, form: dict[str, str], code: int
) -> None:
    reply = api.post(messages_url(twilio), data=form, timeout=5)

    assert reply.status_code == 400
    error = reply.json()
    assert error["code"] == code
    assert error["status"] == 400
    assert error["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert twilio.accepted() == []


def test_fetch_returns_one_message_and_404_for_an_unknown_sid(
    twilio: TwilioServer, api: requests.Session
) -> None:
    created = create(api, twilio, ALICE, "hello")
    base = f"{twilio.url}/2010-04-01/Accounts/{twilio.account_sid}/Messages"

    found = api.get(f"{base}/{created['sid']}.json", timeout=5)
    missing = api.get(f"{base}/SM{'f' * 32}.json", timeout=5)

    assert found.json()["body"] == "hello"
    assert missing.status_code == 404
    assert missing.json()["code"] == 20404


def test_a_fault_aimed_at_one_number_leaves_the_others_alone(
    twilio: TwilioServer, api: requests.Session
) -> None:
    twilio.inject("21610", to=BOB)

    create(api, twilio, ALICE, "to alice")
    refused = api.post(
        messages_url(twilio), data={"To": BOB, "From": CLINIC, "Body": "to bob"}, timeout=5
    )
    create(api, twilio, BOB, "to bob again")

    assert refused.json()["code"] == 21610
    assert [m["body"] for m in twilio.accepted()] == ["to alice", "to bob again"]


def test_a_seeded_fault_rate_faults_the_same_requests_each_run(
    api: requests.Session,
) -> None:
    def run() -> list[int]:
        with TwilioServer() as server:
            server.set_fault_rate(0.5, faults=("429", "500"), seed=7)
            statuses = []
            for n in range(20):
                form = {"To": ALICE, "From": CLINIC, "Body": f"n{n}"}
                reply = api.post(
                    messages_url(server),
                    data=form,
                    auth=(server.account_sid, server.auth_token),
                    timeout=5,
                )
                statuses.append(reply.status_code)
            return statuses

    first, second = run(), run()

    assert first == second
    assert set(first) == {201, 429, 500}


def test_each_accepted_message_is_appended_to_the_log_as_a_json_line(tmp_path: Path) -> None:
    log = tmp_path / "accepted.jsonl"
    with TwilioServer(log_path=log) as server, requests.Session() as api:
        api.auth = (server.account_sid, server.auth_token)
        server.inject("lost")
        with pytest.raises(requests.ConnectionError):
            create(api, server, ALICE, "first")
        server.inject("429")
        api.post(messages_url(server), data={"To": ALICE, "From": CLINIC, "Body": "x"}, timeout=5)
        second = create(api, server, BOB, "second")

    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["body"] for line in lines] == ["first", "second"]
    assert lines[1]["sid"] == second["sid"]
    assert set(lines[0]) == {
        "sid",
        "to",
        "from",
        "messaging_service_sid",
        "body",
        "status_callback",
        "date_created",
    }


def test_the_server_runs_as_a_process_prints_its_url_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    log = tmp_path / "accepted.jsonl"
    sid, token = "AC" + "1" * 32, "process-token"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "tests.support.twilio_server", "--port", "0"]
    command += ["--account-sid", sid, "--auth-token", token, "--log", str(log)]
    with subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().strip()
            reply = requests.post(
                f"{url}/2010-04-01/Accounts/{sid}/Messages.json",
                data={"To": ALICE, "From": CLINIC, "Body": "from a process"},
                auth=(sid, token),
                timeout=5,
            )
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()

    assert url.startswith("http://127.0.0.1:")
    assert reply.status_code == 201
    assert json.loads(log.read_text())["body"] == "from a process"
