"""The workers' cycle collector (campaigns.collector), wired to the worker's signals."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import signals
from typer.testing import CliRunner

from campaigns.cli.main import app as cli
from campaigns.collector import YOUNG_GENERATION
from tasks.app import app


@pytest.fixture
def collector_restored() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


@pytest.mark.usefixtures("collector_restored")
def test_a_starting_worker_collects_its_youngest_generation_less_often() -> None:
    gc.set_threshold(700, 10, 10)
    signals.worker_init.send(sender=app)
    assert gc.get_threshold() == (YOUNG_GENERATION, 10, 10)


@pytest.mark.usefixtures("collector_restored")
def test_the_prefork_parent_freezes_what_it_holds_before_it_forks_a_pool_process() -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    kept = [[] for _ in range(10)]  # lists: objects the collector tracks
    signals.worker_before_create_process.send(sender=app)
    assert gc.get_freeze_count() >= len(kept)


@pytest.mark.usefixtures("collector_restored")
def test_a_command_line_run_collects_its_youngest_generation_less_often(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``meridian patients import`` and the rest run with the workers' tuning."""
    monkeypatch.setenv("MERIDIAN_DATABASE_URL", f"sqlite:///{tmp_path / 'm.db'}")
    gc.set_threshold(700, 10, 10)
    result = CliRunner().invoke(cli, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert gc.get_threshold() == (YOUNG_GENERATION, 10, 10)
