"""Settings for tests: the sample clinic, and Settings built without any .env file."""

from __future__ import annotations

from pathlib import Path

from campaigns.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CLINIC = {
    "clinic_name": "Harbor Acupuncture & Wellness",
    "clinic_address": "120 Harbor Street, Suite 4\nBoston, MA 02110",
    "clinic_phone": "(617) 555-0142",
    "clinic_timezone": "America/New_York",
}
SQLITE_IN_MEMORY = "sqlite://"


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Settings for a test: the sample clinic, the shipped templates, an outbox under
    ``tmp_path``, a SQLite database in memory; ``overrides`` win."""
    values: dict[str, object] = {
        "database_url": SQLITE_IN_MEMORY,
        "templates_dir": ROOT / "templates",
        "outbox_dir": tmp_path / "outbox",
        "env": "test",
        **CLINIC,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]
