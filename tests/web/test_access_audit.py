"""Who saw which patient is audited and browsable; the JSON log lines of the same
requests are valid JSON, carry a request id, and never a patient's values."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient

from campaigns import logs
from campaigns.content import catalogue
from campaigns.people import staff as accounts
from campaigns.people.patients import import_patients
from campaigns.services import Services
from campaigns.web.app import create_app
from tests.conftest import ROOT, make_settings

PASSWORD = "correct horse battery staple"
CAMPAIGN = ROOT / "examples/campaigns/cold-and-flu-season.yaml"


@pytest.fixture
def svc(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    monkeypatch.setattr(
        accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )
    services = Services(make_settings(tmp_path, database_url=database_url))
    services.db.upgrade()
    accounts.add_user(services, "vic", PASSWORD, "viewer")
    accounts.add_user(services, "ada", PASSWORD, "admin")
    import_patients(ROOT / "examples/patients.csv", services.patients, region="US", actor="t")
    catalogue.apply_campaign(services, CAMPAIGN, actor="t", approve=True)
    yield services
    services.close()


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    logs.configure("json", "DEBUG", stream=stream)
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def _csrf(client: FlaskClient, path: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))
    assert found, path
    return found.group(1)


def _sign_in(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    form = {"csrf_token": _csrf(client, "/login"), "username": username, "password": PASSWORD}
    assert client.post("/login", data=form).status_code == 302
    return client


def test_viewing_searching_and_previewing_a_patient_are_audited_and_logged_without_phi(
    svc: Services, log_lines: io.StringIO
) -> None:
    patient = svc.patients.find("P000002")
    assert patient is not None and patient.last_name and patient.email
    app = create_app(svc)
    client = _sign_in(app, "vic")
    csrf = _csrf(client, "/patients")
    assert client.post("/patients/search", data={"csrf_token": csrf, "q": patient.last_name})
    assert client.get(f"/patients/{patient.patient_id}").status_code == 200
    definition = CAMPAIGN.read_text()
    previewed = client.post(
        "/campaigns/preview",
        data={"csrf_token": csrf, "definition": definition, "patient": "P000002"},
    )
    assert previewed.status_code == 200

    events = svc.reports.audit_page(action_prefix="patient.")
    seen = {(e["actor"], e["action"], e["subject_id"]) for e in events}
    assert ("vic", "patient.view", str(patient.patient_id)) in seen
    assert ("vic", "patient.preview", str(patient.patient_id)) in seen
    search = next(e for e in events if e["action"] == "patient.search")
    assert patient.patient_id in search["detail"]["ids"]
    assert patient.last_name not in json.dumps(search["detail"])

    admin = _sign_in(app, "ada")
    page = admin.get("/audit?action=patient.").get_data(as_text=True)
    assert "patient.view" in page and "patient.preview" in page and "patient.search" in page

    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    assert lines and all(line["level"] and line["logger"] for line in lines)
    assert any(line.get("request_id") for line in lines)
    text = log_lines.getvalue()
    for value in (patient.last_name, patient.email, patient.phone, patient.first_name):
        assert value is not None and value not in text
