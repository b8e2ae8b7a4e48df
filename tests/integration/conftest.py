"""Real services for the integration tests: redis-server, a database, Celery workers.

A missing service skips locally and fails under CI=true (tests.support.services).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import pytest
import redis

from campaigns.settings import Settings
from campaigns.wiring import Services
from tests.conftest import CLINIC, ROOT
from tests.support.services import PostgresServer, RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.stop()


def backends() -> list[str]:
    return [
        b.strip()
        for b in os.environ.get("TEST_DATABASES", "sqlite,postgresql").split(",")
        if b.strip()
    ]


@pytest.fixture(params=backends())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meridian.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"t{os.getpid()}_{time.monotonic_ns()}")


def shift_into_window() -> float:
    """Seconds that put Meridian's clock at 18:00 UTC: inside every US patient's hours."""
    now = datetime.now(UTC)
    return (now.replace(hour=18, minute=0, second=0, microsecond=0) - now).total_seconds()


@pytest.fixture
def env(tmp_path: Path, redis_server: RedisServer, database_url: str) -> dict[str, str]:
    redis.Redis.from_url(redis_server.url).flushall()
    values = {
        "MERIDIAN_DATABASE_URL": database_url,
        "MERIDIAN_REDIS_URL": redis_server.url,
        "MERIDIAN_TEMPLATES_DIR": str(ROOT / "templates"),
        "MERIDIAN_OUTBOX_DIR": str(tmp_path / "outbox"),
        "MERIDIAN_SMS_RATE": "1000",
        "MERIDIAN_SMS_BURST": "100",
        "MERIDIAN_EMAIL_RATE": "1000",
        "MERIDIAN_EMAIL_BURST": "100",
        "MERIDIAN_CLOCK_SHIFT_S": str(int(shift_into_window())),
        "MERIDIAN_ENV": "test",
        **{f"MERIDIAN_{k.upper()}": v for k, v in CLINIC.items()},
    }
    return values


@pytest.fixture
def svc(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    services = Services(Settings(_env_file=None))  # type: ignore[call-arg]
    services.db.upgrade()
    yield services
    services.close()


class Workers:
    """Real ``celery -A tasks worker`` processes (with the embedded RedBeat beat)."""

    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        self.env = {**os.environ, **env}
        self.logdir = logdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []

    def start(
        self, *, beat: bool = True, concurrency: int = 2, queues: str = "runs,send,maintenance"
    ) -> subprocess.Popen[bytes]:
        n = len(self.procs)
        cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tasks",
            "worker",
            "-Q",
            queues,
            "-c",
            str(concurrency),
            "--loglevel",
            "INFO",
            "-n",
            f"w{n}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        if beat:
            cmd += ["-B", "-s", str(self.logdir / f"beat-{n}")]
        log = open(self.logdir / f"worker-{n}.log", "ab")  # noqa: SIM115
        self._logs.append(log)
        proc = subprocess.Popen(
            cmd, env=self.env, stdout=log, stderr=log, cwd=ROOT, start_new_session=True
        )
        self.procs.append(proc)
        return proc

    def kill9(self, proc: subprocess.Popen[bytes]) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in self._logs:
            log.close()

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-4000:] for p in sorted(self.logdir.glob("worker-*.log"))
        )


@pytest.fixture
def workers(env: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    w = Workers(env, tmp_path)
    yield w
    w.stop()


def wait_for(
    check: Callable[[], bool], timeout: float, what: str, on_fail: Callable[[], str] = lambda: ""
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout}s waiting for {what}\n{on_fail()}")
