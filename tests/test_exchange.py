"""Campaigns to YAML and back (campaigns.content.exchange): export every campaign,
import into an empty ledger, export again: the same bytes, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from campaigns.content import exchange
from campaigns.content.catalogue import save_definition
from campaigns.content.definitions import load_definition, parse_definition
from campaigns.domain.ports import Dispatcher
from campaigns.errors import InputError
from campaigns.sending import control
from campaigns.sending.stubs import MemoryDispatcher
from campaigns.services import Services
from tests.support.factories import ACTOR, EXAMPLE_CAMPAIGN
from tests.support.settings import CLINIC, ROOT, SQLITE_IN_MEMORY, make_settings

SHIPPED = load_definition(EXAMPLE_CAMPAIGN).to_json()


@pytest.fixture
def settings_overrides(database_url: str) -> dict[str, object]:
    """A database the CLI's own Services open too (on SQLite, a file)."""
    return {"database_url": database_url}


@pytest.fixture
def dispatcher() -> Dispatcher:
    """Cancel and archive drop a schedule entry: in memory here, no worker involved."""
    return MemoryDispatcher()


def _save(svc: Services, **changes: Any) -> str:
    data = {**SHIPPED, **changes}
    definition = parse_definition(data, "test")
    save_definition(svc, definition, actor=ACTOR, source="test")
    return definition.name


def _campaigns(svc: Services) -> None:
    """Campaigns that use every part of a definition."""
    _save(svc)
    _save(
        svc,
        name="spring-once",
        description='Ünïcode — and a "quoted" line:\nwith a second line',
        channels=["email"],
        channel_policy="preferred",
        audience={
            "tags_any": ["herbal", "massage"],
            "states": ["ma", "NY"],
            "last_visit_within_days": 90,
        },
        schedule={"once": "2027-03-05", "send_time": "09:30", "grace_hours": 1.5},
        limits={"max_attempts": 3, "frequency_cap_days": 0, "retry_base_s": 12.5},
    )
    _save(
        svc,
        name="weekly-reminder",
        channels=["sms"],
        schedule={
            "rrule": "FREQ=WEEKLY;BYDAY=MO,TH",
            "send_time": "17:45",
            "timezone": "America/Chicago",
        },
        # copy written in the console lives in the ledger: the export carries it
        copy={
            "sms": "{{ clinic.name }}: Hi {{ patient.first_name }}, open late Mon and Thu. "
            "Reply STOP to opt out"
        },
    )
    _save(svc, name="gone")
    control.cancel(svc, "gone", actor=ACTOR)  # a cancelled campaign is not exported
    _save(svc, name="put-away")
    control.archive(svc, "put-away", actor=ACTOR)  # nor an archived one


@pytest.fixture
def empty_ledger(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A way to a fresh, migrated, empty ledger on this test's backend."""
    made: list[Services] = []

    def fresh(svc: Services) -> Services:
        if backend == "postgresql":
            request.getfixturevalue("postgres_test_database").empty()
            return svc
        other = Services(make_settings(tmp_path / "fresh", database_url=SQLITE_IN_MEMORY), None)
        other.db.upgrade()
        made.append(other)
        return other

    yield fresh
    for other in made:
        other.close()


def test_export_import_into_an_empty_ledger_and_export_again_gives_the_same_bytes(
    svc: Services, empty_ledger: Any
) -> None:
    _campaigns(svc)
    first = exchange.export_yaml(svc)
    assert [d["name"] for d in yaml.safe_load_all(first)] == [
        "cold-and-flu-season",
        "spring-once",
        "weekly-reminder",
    ]

    fresh = empty_ledger(svc)
    assert fresh.campaigns.all() == []
    applied = exchange.import_yaml(fresh, first, actor=ACTOR, source="campaigns.yaml")

    assert [a.name for a in applied] == ["cold-and-flu-season", "spring-once", "weekly-reminder"]
    assert exchange.export_yaml(fresh) == first
    assert "open late Mon and Thu" in first
    assert fresh.copies.current("weekly-reminder") is not None
    assert {r["status"] for r in fresh.campaigns.all()} == {"draft"}


def test_the_export_keeps_what_the_shipped_campaign_says(svc: Services) -> None:
    _save(svc)
    [document] = list(yaml.safe_load_all(exchange.export_yaml(svc, "cold-and-flu-season")))
    assert parse_definition(document, "export").to_json() == SHIPPED
    assert len(document["compliance"]["acknowledged"]) == 3


def test_an_import_with_a_bad_document_saves_nothing_and_names_the_document(
    svc: Services,
) -> None:
    _save(svc)
    text = exchange.export_yaml(svc)
    broken = text + text.replace("cold-and-flu-season\n", "second\n", 1).replace(
        "max_attempts: 5", "max_attempts: lots"
    )
    fresh_name = "second"

    with pytest.raises(InputError) as refused:
        exchange.import_yaml(svc, broken, actor=ACTOR, source="campaigns.yaml")

    assert [str(p) for p in refused.value.problems] == [
        "campaigns.yaml (document 2): limits.max_attempts: "
        "Max attempts must be a whole number between 1 and 20"
    ]
    assert svc.campaigns.get(fresh_name) is None


def test_the_cli_exports_to_a_folder_and_imports_it_back(
    svc: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    from campaigns.cli.main import app

    _campaigns(svc)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MERIDIAN_DATABASE_URL", database_url)
    monkeypatch.setenv("MERIDIAN_TEMPLATES_DIR", str(ROOT / "templates"))
    for key, value in CLINIC.items():
        monkeypatch.setenv(f"MERIDIAN_{key.upper()}", value)
    runner = CliRunner()
    whole = runner.invoke(app, ["campaigns", "export"])
    assert whole.exit_code == 0, whole.output
    assert whole.stdout == exchange.export_yaml(svc)

    folder = tmp_path / "git"
    written = runner.invoke(app, ["campaigns", "export", "--out", str(folder)])
    assert written.exit_code == 0, written.output
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["cold-and-flu-season.yaml", "spring-once.yaml", "weekly-reminder.yaml"]

    control.archive(svc, "spring-once", actor=ACTOR)
    imported = runner.invoke(app, ["campaigns", "import", str(folder)])
    assert imported.exit_code == 0, imported.output
    assert "campaign spring-once imported" in imported.stdout
    assert exchange.export_yaml(svc) == whole.stdout
