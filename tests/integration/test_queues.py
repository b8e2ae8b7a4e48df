"""Celery as a Celery user expects it: a bare ``celery -A tasks worker`` consumes every
queue, ``-Q`` still splits them, task events are on, and a run whose queue nobody
consumes says so on its page, in ``runs show`` and in beat's log."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from campaigns import keys
from campaigns.cli.main import app as cli
from campaigns.people import staff as accounts
from campaigns.sending import control, runs
from campaigns.services import Services
from campaigns.web.app import create_app
from tasks.app import app as celery_app
from tests.support.factories import add_examples
from tests.support.waiting import wait_until
from tests.support.workers import Workers

PASSWORD = "correct horse battery staple"


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    # The shortest silence allowed: the warning shows within seconds, not half a minute.
    return {**env, "MERIDIAN_WORKER_SILENCE_S": "5"}


class EventLog:
    """Celery's event stream as Flower reads it: every event type seen, in a thread."""

    def __init__(self) -> None:
        self.types: set[str] = set()
        self._receiver: object = None
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._ready = threading.Event()

    def _listen(self) -> None:
        with celery_app.connection_for_read() as conn:
            receiver = celery_app.events.Receiver(
                conn, handlers={"*": lambda event: self.types.add(event["type"])}
            )
            self._receiver = receiver
            receiver.consume  # noqa: B018 - the receiver declares its queue on first use
            self._ready.set()
            receiver.capture(limit=None, timeout=None, wakeup=False)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        if self._receiver is not None:
            self._receiver.should_stop = True  # type: ignore[attr-defined]
        self._thread.join(5)


@pytest.fixture
def events(svc: Services) -> Iterator[EventLog]:
    log = EventLog()
    log.start()
    yield log
    log.stop()


def test_a_bare_worker_consumes_every_queue_and_a_run_finishes(
    svc: Services, workers: Workers, events: EventLog
) -> None:
    add_examples(svc)
    workers.start()  # `celery -A tasks worker -B`: no -Q
    run_id = control.run_now(svc, "cold-and-flu-season", actor="test")
    assert run_id is not None
    wait_until(
        lambda: runs.run_status(svc, run_id)["status"] == "finished",
        120,
        "the run to finish",
        workers.logs,
    )
    status = runs.run_status(svc, run_id)
    assert status["by_state"].get("sent", 0) > 0
    assert status["warnings"] == []
    # Celery's own inspect, from the other side: the worker consumes all three queues.
    replies = celery_app.control.inspect(timeout=2).active_queues() or {}
    consumed = {q["name"] for queues in replies.values() for q in queues}
    assert consumed == set(keys.QUEUES)
    # Task events are on: the sender's task-sent and the worker's task-succeeded reach
    # an event consumer (Flower is one).
    wait_until(
        lambda: {"task-sent", "task-received", "task-succeeded"} <= events.types,
        20,
        "task events",
        lambda: str(sorted(events.types)),
    )


def test_an_unconsumed_queue_is_named_on_the_page_in_runs_show_and_in_beats_log(
    svc: Services, workers: Workers, tmp_path: Path
) -> None:
    add_examples(svc)
    # The trap: a worker on some queues only. Nobody consumes `send`.
    workers.start(queues="runs,maintenance")
    run_id = control.run_now(svc, "cold-and-flu-season", actor="test")
    assert run_id is not None

    def warned() -> bool:
        status = runs.run_status(svc, run_id)
        return status["status"] == "running" and any("'send'" in w for w in status["warnings"])

    wait_until(warned, 60, "the run to say nobody consumes `send`", workers.logs)
    status = runs.run_status(svc, run_id)
    assert [w for w in status["warnings"] if "'runs'" in w or "'maintenance'" in w] == []

    shown = CliRunner().invoke(cli, ["runs", "show", str(run_id)])
    assert shown.exit_code == 0, shown.output
    assert re.search(r"warning: run \d+ has due work, but queue 'send'", shown.output)
    as_json = CliRunner().invoke(cli, ["runs", "show", str(run_id), "--json"])
    assert "no worker has ever reported consuming it" in as_json.output

    accounts.add_user(svc, "vic", PASSWORD, "viewer")
    client = create_app(svc).test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    client.post(
        "/login", data={"csrf_token": token.group(1), "username": "vic", "password": PASSWORD}
    )
    html = client.get(f"/runs/{run_id}").get_data(as_text=True)
    assert 'data-warning="unattended"' in html
    assert "queue &#39;send&#39;" in html

    wait_until(
        lambda: f"run {run_id} has due work, but queue 'send'" in workers.logs(),
        30,
        "beat to log the unattended queue",
        workers.logs,
    )

    # -Q still splits: a worker on `send` alone takes the run to the end.
    workers.start(beat=False, queues=keys.SEND_QUEUE)
    wait_until(
        lambda: runs.run_status(svc, run_id)["status"] == "finished",
        120,
        "the run to finish once `send` has a worker",
        workers.logs,
    )
    assert runs.run_status(svc, run_id)["warnings"] == []
