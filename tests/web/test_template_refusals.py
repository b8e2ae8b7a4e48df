"""A template that would exhaust the process is a 422 with file and line, never a 500:
console save, console preview and ``POST /api/campaigns``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient

from campaigns.people import staff as accounts
from campaigns.services import Services
from campaigns.web.app import create_app
from tests.conftest import make_settings

PASSWORD = "correct horse battery staple"
PAYLOADS = ('{{ "x" * 10**9 }}', "{{ range(10**9)|list }}", '{% include "bomb/nope.j2" %}')


def definition(folder: str) -> str:
    return (
        f"name: {folder}\nchannels: [sms]\nchannel_policy: all_consented\n"
        f"templates: {folder}\naudience: {{}}\n"
        'schedule:\n  once: 2030-01-01\n  send_time: "10:00"\n  timezone: America/New_York\n'
    )


@pytest.fixture
def app(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setattr(
        accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )
    templates = tmp_path / "templates"
    for number, payload in enumerate(PAYLOADS):
        (templates / f"bomb-{number}").mkdir(parents=True)
        (templates / f"bomb-{number}" / "sms.txt.j2").write_text(
            f"Hi {{{{ patient.first_name }}}}\n{payload} Reply STOP to opt out\n"
        )
    svc = Services(make_settings(tmp_path, database_url=database_url, templates_dir=templates))
    svc.db.upgrade()
    accounts.add_user(svc, "mara", PASSWORD, "marketer")
    yield create_app(svc)
    svc.close()


def _signed_in(app: Flask) -> tuple[FlaskClient, str]:
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    form = {"csrf_token": token.group(1), "username": "mara", "password": PASSWORD}
    assert client.post("/login", data=form).status_code == 302
    page = client.get("/campaigns/new").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    return client, token.group(1)


@pytest.mark.parametrize("number", range(len(PAYLOADS)))
def test_the_console_and_the_api_answer_422_naming_file_and_line(app: Flask, number: int) -> None:
    folder = f"bomb-{number}"
    where = f"{folder}/sms.txt.j2:2"
    client, csrf = _signed_in(app)
    saved = client.post("/campaigns", data={"csrf_token": csrf, "definition": definition(folder)})
    assert saved.status_code == 422
    assert where in saved.get_data(as_text=True)
    previewed = client.post(
        "/campaigns/preview", data={"csrf_token": csrf, "definition": definition(folder)}
    )
    assert previewed.status_code == 422
    assert where in previewed.get_data(as_text=True)
    reply = app.test_client().post("/api/token", json={"username": "mara", "password": PASSWORD})
    bearer = {"Authorization": f"Bearer {reply.json['token']}"}  # type: ignore[index]
    api = app.test_client().post(
        "/api/campaigns", data=definition(folder), headers={**bearer, "Content-Type": "text/yaml"}
    )
    assert api.status_code == 422, api.json
    assert any(where in p["where"] for p in api.json["problems"])  # type: ignore[index]
