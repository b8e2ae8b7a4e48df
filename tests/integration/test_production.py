"""The production topology of compose.yaml, run natively (this machine has no container
runtime): PostgreSQL, Redis, the migrate step, gunicorn serving campaigns.web.wsgi,
two workers and beat, each started with its compose command. A campaign goes
through it; the console, the API and the health routes are checked over HTTP."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from campaigns.transports.outbox import read_outbox
from tests.conftest import ROOT
from tests.support.services import PostgresServer, free_port
from tests.support.waiting import wait_until
from tests.support.workers import Workers

COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
PASSWORD = "correct horse battery staple"
METRICS_TOKEN = "prometheus-" + "y" * 32
CLI = [sys.executable, "-c", "from campaigns.cli.main import app; app()"]


def command(service: str) -> list[str]:
    """The service's compose command, as this checkout runs it (console scripts by module)."""
    head, *rest = COMPOSE["services"][service]["command"]
    if head == "meridian":
        return [*CLI, *rest]
    return [sys.executable, "-m", head, *rest]


@pytest.fixture
def database_url(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database(f"prod{os.getpid()}_{time.monotonic_ns()}")


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    # MERIDIAN_ENV stays "test": production refuses the outbox transport this test
    # reads the messages from, and an http public URL.
    return {**env, "MERIDIAN_WORKER_SILENCE_S": "5", "MERIDIAN_METRICS_TOKEN": METRICS_TOKEN}


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [*CLI, *args], env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, f"meridian {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_a_campaign_goes_through_the_compose_topology_run_natively(
    env: dict[str, str], workers: Workers, tmp_path: Path
) -> None:
    migrate = subprocess.run(
        command("migrate"), env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True
    )
    assert migrate.returncode == 0, migrate.stderr
    cli(env, "users", "add", "ops", "--role", "marketer", "--password", PASSWORD)
    cli(env, "patients", "import", str(ROOT / "examples/patients.csv"))
    cli(
        env,
        "campaigns",
        "apply",
        "--approve",
        str(ROOT / "examples/campaigns/cold-and-flu-season.yaml"),
    )

    port = free_port()
    web = command("web")
    web[web.index("--bind") + 1] = f"127.0.0.1:{port}"
    workers.start_command("web", web)
    for n in range(2):  # two workers on one host need two node names
        workers.start_command(f"w{n}", [*command("worker"), "-n", f"w{n}@%h", "-c", "2"])
    workers.start_command("beat", command("beat"))
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:  # gunicorn's workers may still be importing the app: the socket waits
            return requests.get(f"{base}/readyz", timeout=10).status_code == 200
        except (requests.ConnectionError, requests.Timeout):
            return False

    wait_until(ready, 90, "/readyz to answer 200", workers.logs)
    readyz = requests.get(f"{base}/readyz", timeout=30).json()
    assert set(readyz["checks"]) == {
        "database",
        "migrations",
        "redis",
        "worker:runs",
        "worker:send",
        "worker:maintenance",
        "beat",
    }
    assert requests.get(f"{base}/healthz", timeout=30).json() == {"status": "ok"}

    started = cli(env, "campaigns", "run", "cold-and-flu-season", "--now", "--json")
    run_id = int(re.search(r'"run_id": (\d+)', started).group(1))  # type: ignore[union-attr]

    api = requests.Session()
    token = api.post(
        f"{base}/api/token", json={"username": "ops", "password": PASSWORD}, timeout=30
    ).json()["token"]
    api.headers["Authorization"] = f"Bearer {token}"
    wait_until(
        lambda: api.get(f"{base}/api/runs/{run_id}", timeout=30).json()["status"] == "finished",
        180,
        "the run to finish",
        workers.logs,
    )
    status = api.get(f"{base}/api/runs/{run_id}", timeout=30).json()
    sent = status["by_state"]["sent"]
    assert sent > 0 and status["warnings"] == []
    assert set(status["by_state"]) <= {"sent", "skipped"}
    # From the other side: the outbox holds each sent message once.
    outbox = read_outbox(Path(env["MERIDIAN_OUTBOX_DIR"]))
    assert len(outbox) == sent
    assert len({(m["delivery_id"], m["channel"]) for m in outbox}) == sent

    # The console, signed in as staff are, over HTTP.
    console = requests.Session()
    login = console.get(f"{base}/login", timeout=30).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login)
    assert csrf
    signed_in = console.post(
        f"{base}/login",
        data={"csrf_token": csrf.group(1), "username": "ops", "password": PASSWORD},
        timeout=30,
    )
    assert signed_in.status_code == 200 and "/login" not in signed_in.url
    page = console.get(f"{base}/runs/{run_id}", timeout=30)
    assert page.status_code == 200
    assert 'data-status="finished"' in page.text
    assert f"{sent}" in page.text

    metrics = requests.get(
        f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30
    ).text
    sent_lines = re.findall(
        r'^meridian_messages_total\{channel="\w+",outcome="sent"\} (\S+)$', metrics, re.M
    )
    assert sum(float(v) for v in sent_lines) == sent
    assert re.search(r'^meridian_queue_workers\{queue="send"\} 2\.0$', metrics, re.M)
    # gunicorn's access lines carry no token: not an unsubscribe link's, not one in a
    # query string (campaigns.web.gunicorn_conf).
    link_token, query_token = "unsub" + secrets.token_hex(12), "qtok" + secrets.token_hex(12)
    requests.get(f"{base}/unsubscribe/{link_token}", timeout=30)
    requests.get(f"{base}/healthz?token={query_token}", timeout=30)
    web_log = Path(workers.logdir / "worker-web.log")
    wait_until(
        lambda: (
            web_log.read_text().count("/unsubscribe/[token]") >= 1
            and "?token=[token]" in web_log.read_text()
        ),
        30,
        "gunicorn to log both requests",
        workers.logs,
    )
    assert link_token not in web_log.read_text() and query_token not in web_log.read_text()
    # Every process still runs: nothing crashed on the way.
    assert len(workers.live()) == 4, workers.logs()
