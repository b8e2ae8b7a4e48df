"""Real services for the integration tests: redis-server, a database, Celery workers.

A missing service skips locally and fails under CI=true (tests.support.services).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from campaigns.services import Services
from campaigns.settings import Settings
from tasks.app import dispatcher
from tests.conftest import CLINIC, ROOT, backends
from tests.support.services import PostgresServer, RedisServer
from tests.support.workers import Workers, shift_into_window, wait_for

__all__ = ["Workers", "shift_into_window", "wait_for"]

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(params=backends())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meridian.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"t{os.getpid()}_{time.monotonic_ns()}")


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
    services = Services(Settings(_env_file=None), dispatcher())  # type: ignore[call-arg]
    services.db.upgrade()
    yield services
    services.close()


@pytest.fixture
def workers(env: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    w = Workers(env, tmp_path)
    yield w
    w.stop()
