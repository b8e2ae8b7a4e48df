"""The integration tests' environment: real redis-server, a database file or PostgreSQL,
Celery workers, all configured alike.

``svc`` (tests/conftest.py) here reads the same settings the workers get: ``env``,
which is also set in this process's environment, because Celery's app in the test
process configures itself from it on first use; its dispatcher is that app's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from campaigns.domain.ports import Dispatcher
from tasks.app import dispatcher as celery_dispatcher
from tests.support.workers import Workers, worker_env


@pytest.fixture
def env(tmp_path: Path, redis_url: str, database_url: str) -> dict[str, str]:
    """The MERIDIAN_* environment of this test's workers (a test may change it before
    it starts them): this test's database and Redis, generous rates, the clock
    shifted into every patient's sending hours."""
    return worker_env(
        database_url=database_url, redis_url=redis_url, outbox_dir=tmp_path / "outbox"
    )


@pytest.fixture
def settings_overrides(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """``svc`` gets what the workers get, and so does this process's environment."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {key.removeprefix("MERIDIAN_").lower(): value for key, value in env.items()}


@pytest.fixture
def dispatcher(settings_overrides: dict[str, object]) -> Dispatcher:
    """Celery's, as the entry points plug it in: ``svc`` queues work for real workers
    (through the Celery app of this process, configured from the environment above)."""
    return celery_dispatcher()


@pytest.fixture
def workers(env: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    w = Workers(env, tmp_path)
    yield w
    w.stop()
