"""Failure is PHI-safe at every edge: the CLI, the API, the console, the log.

A patient's values (name, email, phone, external_id) must never reach stdout,
stderr or a log line, whether the failure is bad input (a control character) or an
unexpected database error whose text, on PostgreSQL, repeats the failing row.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from flask import Flask
from sqlalchemy import insert
from typer.testing import CliRunner

from campaigns import logs
from campaigns.cli.startup import handled
from campaigns.people import staff as accounts
from campaigns.services import Services
from campaigns.store.db import Database
from campaigns.store.tables import patients
from campaigns.web.app import create_app
from tests.conftest import CLINIC, ROOT, make_settings

HEADER = (
    "external_id,first_name,last_name,email,phone,timezone,state,tags,last_visit,"
    "next_appointment,sms_consent,sms_consent_at,sms_consent_source,email_consent,"
    "email_consent_at,email_consent_source"
)
SECRETS = ("PX-77123", "Zelda", "Quux", "zelda.quux@example.org", "6175550199", "555-0199")
ROW = (
    "PX-77123,Zel\x00da,Quux,zelda.quux@example.org,(617) 555-0199,,MA,,,,"
    "yes,2024-01-05,form,yes,2024-01-05,form"
)
PASSWORD = "correct horse battery staple"


def assert_no_phi(text: str) -> None:
    for value in SECRETS:
        assert value not in text, f"{value!r} leaked"


@pytest.fixture
def nul_csv(tmp_path: Path) -> Path:
    path = tmp_path / "nul.csv"
    path.write_text(f"{HEADER}\n{ROW}\n", encoding="utf-8")
    return path


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Every log line of the test, as JSON, at DEBUG; the root logger restored after."""
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


def _cli(args: list[str], database_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MERIDIAN_")},
        "PYTHONPATH": str(ROOT),
        "MERIDIAN_DATABASE_URL": database_url,
        "MERIDIAN_TEMPLATES_DIR": str(ROOT / "templates"),
        "MERIDIAN_LOG_FORMAT": "json",
        "MERIDIAN_LOG_LEVEL": "DEBUG",
        **{f"MERIDIAN_{k.upper()}": v for k, v in CLINIC.items()},
    }
    code = "from campaigns.cli.main import app; app()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_nul_byte_csv_fails_with_row_and_column_and_prints_no_value(
    nul_csv: Path, database_url: str, tmp_path: Path
) -> None:
    database = Database(database_url)
    database.upgrade()
    database.dispose()
    for extra in ([], ["--json"]):
        done = _cli(["patients", "import", *extra, str(nul_csv)], database_url, tmp_path)
        assert done.returncode == 2, done.stdout + done.stderr
        everything = done.stdout + done.stderr
        assert "row 2, column first_name" in everything
        assert "U+0000" in everything
        assert_no_phi(everything)
    reply = json.loads(done.stdout)
    assert reply["problems"] == [
        {
            "where": "row 2, column first_name",
            "reason": "holds a control character (U+0000, NUL) at character 4; remove it "
            "(only tab is allowed) and import again",
        }
    ]


@pytest.fixture
def web_app(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setattr(
        accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )
    svc = Services(make_settings(tmp_path, database_url=database_url))
    svc.db.upgrade()
    accounts.add_user(svc, "mara", PASSWORD, "marketer")
    app = create_app(svc)

    @app.get("/api/test-phi-failure")
    def _fail() -> str:  # a real database error whose text repeats the row
        with svc.db.begin() as conn:
            conn.execute(insert(patients).values(external_id=None, **_PHI_COLUMNS))
        return "unreachable"

    yield app
    svc.close()


_PHI_COLUMNS = {
    "first_name": "Zelda",
    "last_name": "Quux",
    "email": "zelda.quux@example.org",
    "phone": "+16175550199",
}


def _token(app: Flask) -> dict[str, str]:
    reply = app.test_client().post("/api/token", json={"username": "mara", "password": PASSWORD})
    return {"Authorization": f"Bearer {reply.json['token']}"}  # type: ignore[index]


def test_the_api_import_of_a_nul_byte_csv_names_row_and_column_and_logs_no_value(
    web_app: Flask, nul_csv: Path, log_stream: io.StringIO
) -> None:
    client = web_app.test_client()
    reply = client.post(
        "/api/patients/import",
        data=nul_csv.read_bytes(),
        headers={**_token(web_app), "Content-Type": "text/csv"},
    )
    assert reply.status_code == 422
    body = reply.get_data(as_text=True)
    assert "row 2, column first_name" in body and "U+0000" in body
    assert str(nul_csv.parent) not in body  # no server path shown to staff
    assert_no_phi(body)
    assert_no_phi(log_stream.getvalue())
    assert reply.headers["X-Request-ID"]


def test_an_unexpected_database_error_answers_an_error_id_and_logs_no_value(
    web_app: Flask, log_stream: io.StringIO
) -> None:
    client = web_app.test_client()
    reply = client.get("/api/test-phi-failure", headers=_token(web_app))
    assert reply.status_code == 500
    body = reply.json
    assert body is not None and body["error_id"].startswith("E-")
    assert_no_phi(reply.get_data(as_text=True))
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    failure = [line for line in lines if line.get("error_id") == body["error_id"]]
    assert len(failure) == 1
    assert "IntegrityError (its text is not logged)" in failure[0]["traceback"]
    assert failure[0]["request_id"] == reply.headers["X-Request-ID"]
    assert_no_phi(log_stream.getvalue())


def test_an_unexpected_error_in_a_command_prints_an_error_id_and_no_value(
    tmp_path: Path, database_url: str, log_stream: io.StringIO
) -> None:
    svc = Services(make_settings(tmp_path, database_url=database_url))
    svc.db.upgrade()

    @handled
    def write_a_patient_without_an_id(as_json: bool = False) -> None:
        with svc.db.begin() as conn:
            conn.execute(insert(patients).values(external_id=None, **_PHI_COLUMNS))

    import typer

    cli = typer.Typer()
    cli.command()(write_a_patient_without_an_id)
    try:
        for extra in ([], ["--as-json"]):
            result = CliRunner().invoke(cli, extra)
            assert result.exit_code == 1
            assert "unexpected error E-" in result.output
            assert "IntegrityError (its text is not logged)" in result.output
            assert_no_phi(result.output)
        assert json.loads(result.stdout)["error_id"].startswith("E-")
    finally:
        svc.close()


def test_a_failed_task_logs_an_error_id_and_not_its_exception_text(
    log_stream: io.StringIO,
) -> None:
    from celery import Celery

    import tasks.app  # noqa: F401 - connects the worker's task_failure handler

    app = Celery("failure-test", set_as_current=False)

    @app.task(name="test.fails")
    def fails() -> None:
        raise ValueError("Zelda Quux zelda.quux@example.org +16175550199")

    fails.apply()
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    reported = [line for line in lines if line.get("error_id")]
    assert reported and "task test.fails" in reported[0]["message"]
    assert "ValueError (its text is not logged)" in reported[0]["traceback"]
    assert_no_phi(log_stream.getvalue())
