"""The send loop's tests run on StubbedServices (tests.support.stubs): the ledger on
each backend of TEST_DATABASES, everything Redis and Celery held in memory, and a
clock that moves only when the test moves it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import make_settings
from tests.support.stubs import StubbedServices

# A Wednesday, the shipped campaign's occurrence; 12:00 in Boston, 09:00 in Los Angeles.
MIDDAY = datetime(2025, 10, 15, 16, 0, tzinfo=UTC)


@pytest.fixture
def svc(tmp_path: Path, database_url: str) -> Iterator[StubbedServices]:
    services = StubbedServices(make_settings(tmp_path, database_url=database_url), at=MIDDAY)
    services.db.upgrade()
    yield services
    services.close()
