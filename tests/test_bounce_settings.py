"""The bounce mailbox's address, beat's schedule of it, and migration 0009 both ways."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import inspect

from campaigns.errors import ConfigError
from campaigns.settings import Settings
from campaigns.store.db import Database, downgrade, upgrade
from campaigns.transports.bounce_mailbox import parse_url
from tasks.app import create_app
from tasks.dispatcher import POLL_BOUNCES


def test_the_imap_url_gives_tls_host_port_user_and_folder() -> None:
    where = parse_url("imaps://bounce%40clinic:p%3Ass@mail.example.org/Bounces")
    assert (where.tls, where.host, where.port) == (True, "mail.example.org", 993)
    assert (where.user, where.password, where.folder) == ("bounce@clinic", "p:ss", "Bounces")
    plain = parse_url("imap://u:p@127.0.0.1:1143")
    assert (plain.tls, plain.port, plain.folder) == (False, 1143, "INBOX")


@pytest.mark.parametrize(
    "url", ["pop3://u:p@mail.example.org/", "imaps://mail.example.org/INBOX", "imaps://u@h/"]
)
def test_a_wrong_imap_url_names_the_setting(url: str) -> None:
    with pytest.raises(ConfigError, match="MERIDIAN_BOUNCE_IMAP_URL"):
        parse_url(url)


def test_beat_reads_the_mailbox_only_when_one_is_set() -> None:
    without = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    assert "poll-bounces" not in without.conf.beat_schedule
    with_box = create_app(
        Settings(_env_file=None, bounce_imap_url="imaps://u:p@h/INBOX", bounce_imap_interval_s=60)  # type: ignore[call-arg]
    )
    entry = with_box.conf.beat_schedule["poll-bounces"]
    assert (entry["task"], entry["schedule"]) == (POLL_BOUNCES, 60)
    with_box.loader.import_default_modules()
    assert POLL_BOUNCES in with_box.tasks


@pytest.fixture
def database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Database:
    if backend == "sqlite":
        return Database(f"sqlite:///{tmp_path / 'old.db'}")
    server = request.getfixturevalue("postgres_server")
    return Database(server.create_database(f"m0009_{uuid.uuid4().hex[:12]}"))


def test_migration_0009_adds_and_removes_the_delivery_reports(database: Database) -> None:
    try:
        upgrade(database.engine, "0009")
        assert "delivery_reports" in inspect(database.engine).get_table_names()
        downgrade(database.engine, "0007")
        assert "delivery_reports" not in inspect(database.engine).get_table_names()
        upgrade(database.engine, "0009")
        assert "delivery_reports" in inspect(database.engine).get_table_names()
    finally:
        database.dispose()
