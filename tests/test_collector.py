"""The workers' cycle collector (campaigns.collector), wired to the worker's signals."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import signals
from typer.testing import CliRunner

from campaigns.cli import patients as patients_cli
from campaigns.cli.main import app as cli
from campaigns.collector import YOUNG_GENERATION, collecting_less
from tasks.app import app
from tests.conftest import ROOT


@pytest.fixture
def collector_restored() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


@pytest.mark.usefixtures("collector_restored")
def test_the_prefork_parent_freezes_what_it_holds_before_it_forks_a_pool_process() -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    kept = [[] for _ in range(10)]  # lists: objects the collector tracks
    signals.worker_before_create_process.send(sender=app)
    assert gc.get_freeze_count() >= len(kept)


@pytest.mark.usefixtures("collector_restored")
def test_an_import_from_the_command_line_collects_less_and_gives_the_thresholds_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``meridian patients import`` runs with the youngest generation collected less
    often, and leaves the collector as it found it."""
    monkeypatch.setenv("MERIDIAN_DATABASE_URL", f"sqlite:///{tmp_path / 'm.db'}")
    monkeypatch.setenv("MERIDIAN_TEMPLATES_DIR", str(ROOT / "templates"))
    assert CliRunner().invoke(cli, ["db", "upgrade"]).exit_code == 0
    gc.set_threshold(700, 10, 10)
    seen: list[tuple[int, int, int]] = []
    real = patients_cli.import_patients

    def watched(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.get_threshold())
        return real(*args, **kwargs)

    monkeypatch.setattr(patients_cli, "import_patients", watched)
    result = CliRunner().invoke(cli, ["patients", "import", str(ROOT / "examples/patients.csv")])
    assert result.exit_code == 0, result.output
    assert seen == [(YOUNG_GENERATION, 10, 10)]
    assert gc.get_threshold() == (700, 10, 10)


def test_a_block_collecting_less_gives_the_thresholds_back() -> None:
    before = gc.get_threshold()
    with collecting_less():
        assert gc.get_threshold()[0] == YOUNG_GENERATION
    assert gc.get_threshold() == before
