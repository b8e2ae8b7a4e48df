"""/healthz, /readyz and /metrics of a live deployment (Redis, a database, a real
worker and beat), and ``meridian doctor`` against the local Twilio and SMTP servers."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from campaigns.cli.main import app as cli
from campaigns.sending import control, runs
from campaigns.services import Services
from campaigns.web.app import create_app
from tests.conftest import ROOT
from tests.integration.test_real_channels import smtp
from tests.support.factories import add_examples
from tests.support.services import RedisServer
from tests.support.twilio_server import TwilioServer
from tests.support.waiting import wait_until
from tests.support.workers import Workers
from tests.transports.test_smtp_email import LoopbackController, RecordingHandler

__all__ = ["smtp"]  # fixtures
METRICS_TOKEN = "scrape-me-" + "x" * 24


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "MERIDIAN_WORKER_SILENCE_S": "5", "MERIDIAN_METRICS_TOKEN": METRICS_TOKEN}


@pytest.fixture
def client(svc: Services) -> Iterator[FlaskClient]:
    yield create_app(svc).test_client()


def patient_values() -> list[str]:
    """Every name, email and phone of the demo patients: none may appear in a reply."""
    with open(ROOT / "examples/patients.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [
        v
        for row in rows
        for k, v in row.items()
        if k in ("first_name", "last_name", "email", "phone") and v and len(v) > 3
    ]


def scrape(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    reply = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert reply.status_code == 200
    assert reply.mimetype == "text/plain"
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(reply.get_data(as_text=True))
        for s in family.samples
    }


def test_readyz_follows_the_deployment_and_metrics_count_what_the_ledger_holds(
    svc: Services,
    client: FlaskClient,
    workers: Workers,
    redis_server: RedisServer,
) -> None:
    # Alive and open: no login, no redirect.
    alive = client.get("/healthz")
    assert alive.status_code == 200 and alive.json == {"status": "ok"}
    # Nothing runs yet: not ready, and each missing piece named.
    before = client.get("/readyz")
    assert before.status_code == 503
    checks = before.json["checks"]
    assert checks["database"]["ok"] and checks["redis"]["ok"] and checks["migrations"]["ok"]
    for name in ("worker:runs", "worker:send", "worker:maintenance", "beat"):
        assert checks[name] == {"ok": False, "detail": checks[name]["detail"]}
        assert "never reported" in checks[name]["detail"]

    add_examples(svc)
    workers.start()
    wait_until(lambda: client.get("/readyz").status_code == 200, 60, "/readyz", workers.logs)
    assert all(c["ok"] for c in client.get("/readyz").json["checks"].values())

    run_id = control.run_now(svc, "cold-and-flu-season", actor="test")
    assert run_id is not None
    wait_until(
        lambda: runs.run_status(svc, run_id)["status"] == "finished", 120, "the run", workers.logs
    )
    status = runs.run_status(svc, run_id)
    # A webhook without a signature is refused, and counted.
    assert client.post("/twilio/status", data={"MessageSid": "SM1"}).status_code == 403

    # /metrics: no token, no figures.
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    m = scrape(client)
    for channel, states in status["by_channel"].items():
        assert (
            m[("meridian_messages_total", (("channel", channel), ("outcome", "sent")))]
            == (states["sent"])
        )
        sends = states["sent"]  # the outbox never fails: one provider call per sent message
        assert m[("meridian_send_latency_seconds_count", (("channel", channel),))] == sends
        assert (
            m[("meridian_send_latency_seconds_bucket", (("channel", channel), ("le", "+Inf")))]
            == sends
        )
        assert m[("meridian_rate_limit_acquisitions_total", (("channel", channel),))] == sends
    assert m[("meridian_deliveries", (("state", "pending"),))] == 0
    assert m[("meridian_deliveries", (("state", "sent"),))] == status["by_state"]["sent"]
    assert m[("meridian_import_rows_total", (("outcome", "inserted"),))] == 1000
    refused = (("route", "twilio_status"), ("verdict", "refused"))
    assert m[("meridian_webhook_requests_total", refused)] == 1
    assert m[("meridian_due_batches", ())] == 0
    assert m[("meridian_due_oldest_age_seconds", ())] == 0
    for queue in ("runs", "send", "maintenance"):
        assert ("meridian_queue_length", (("queue", queue),)) in m
        assert m[("meridian_queue_workers", (("queue", queue),))] == 1
    assert m[("meridian_scrape_source_up", (("source", "redis"),))] == 1

    # Nothing a patient told the clinic is in any of these replies.
    bodies = "".join(
        client.get(path, headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).get_data(
            as_text=True
        )
        for path in ("/healthz", "/readyz", "/metrics")
    )
    assert not [v for v in patient_values() if v in bodies]

    # Redis stops: not ready, Redis named, and the scrape still answers from the ledger.
    redis_server.kill()
    try:
        down = client.get("/readyz")
        assert down.status_code == 503
        checks = down.json["checks"]
        assert checks["redis"]["ok"] is False
        assert checks["redis"]["detail"] == "unreachable (ConnectionError)"
        assert checks["database"]["ok"] is True
        assert checks["worker:send"]["detail"] == "unknown: Redis does not answer"
        m = scrape(client)
        assert m[("meridian_scrape_source_up", (("source", "redis"),))] == 0
        assert m[("meridian_scrape_source_up", (("source", "database"),))] == 1
    finally:
        workers.stop()
        redis_server.restart()


def test_doctor_checks_settings_services_and_provider_credentials(
    svc: Services,
    monkeypatch: pytest.MonkeyPatch,
    twilio: TwilioServer,
    smtp: tuple[LoopbackController, RecordingHandler],
) -> None:
    controller, _ = smtp
    providers = {
        "MERIDIAN_SMS_TRANSPORT": "twilio",
        "TWILIO_ACCOUNT_SID": twilio.account_sid,
        "TWILIO_AUTH_TOKEN": twilio.auth_token,
        "MERIDIAN_TWILIO_FROM": "+16175550199",
        "MERIDIAN_TWILIO_API_URL": twilio.url,
        "MERIDIAN_EMAIL_TRANSPORT": "smtp",
        "MERIDIAN_SMTP_HOST": "127.0.0.1",
        "MERIDIAN_SMTP_PORT": str(controller.port),
        "MERIDIAN_SMTP_STARTTLS": "false",
    }
    for key, value in providers.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(cli, ["doctor", "--json"])
    report = json.loads(result.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["settings"]["ok"]
    assert checks["database"]["ok"] and checks["redis"]["ok"] and checks["migrations"]["ok"]
    assert checks["provider:sms"] == {
        "name": "provider:sms",
        "ok": True,
        "detail": f"twilio: account {twilio.account_sid} is active",
    }
    assert checks["provider:email"]["ok"], checks["provider:email"]
    assert "answered NOOP with 250" in checks["provider:email"]["detail"]
    # No worker, no beat: doctor fails, and says which.
    assert result.exit_code == 1
    assert not checks["worker:send"]["ok"] and not checks["beat"]["ok"]
    assert twilio.auth_token not in result.stdout

    # A wrong token is a failed check naming the settings, not a traceback.
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "wrong-token")
    monkeypatch.setenv("MERIDIAN_SMTP_PORT", "1")
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == 1
    text = " ".join(result.stdout.split())
    assert "Twilio answered 401" in text and "TWILIO_AUTH_TOKEN" in text
    assert "SMTP session failed" in text
    assert "some checks fail" in text
    assert "wrong-token" not in result.stdout

    # Settings that do not load: one failed check naming the key.
    monkeypatch.setenv("MERIDIAN_BATCH_SIZE", "0")
    result = CliRunner().invoke(cli, ["doctor", "--json"])
    assert result.exit_code == 1
    [only] = json.loads(result.stdout)["checks"]
    assert only["name"] == "settings" and only["ok"] is False
    assert only["detail"].startswith("MERIDIAN_BATCH_SIZE:")
