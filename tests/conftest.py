"""Shared fixtures: settings and services on an in-memory SQLite ledger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from campaigns.settings import Settings
from campaigns.wiring import Services

ROOT = Path(__file__).resolve().parents[1]
CLINIC = {
    "clinic_name": "Harbor Acupuncture & Wellness",
    "clinic_address": "120 Harbor Street, Suite 4\nBoston, MA 02110",
    "clinic_phone": "(617) 555-0142",
    "clinic_timezone": "America/New_York",
}


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": "sqlite://",
        "templates_dir": ROOT / "templates",
        "outbox_dir": tmp_path / "outbox",
        "env": "test",
        **CLINIC,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def svc(settings: Settings) -> Iterator[Services]:
    services = Services(settings)
    services.db.upgrade()
    yield services
    services.close()
