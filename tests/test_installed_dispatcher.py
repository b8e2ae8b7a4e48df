"""The CLI and the web app plug in the workers' dispatcher through the package's
entry point, never by importing tasks: the installed one is Celery's, and without
exactly one the error says what to install."""

from __future__ import annotations

from importlib.metadata import EntryPoints

import pytest

from campaigns import services
from campaigns.errors import ConfigError
from campaigns.services import DISPATCHERS, installed_dispatcher
from tasks.dispatcher import CeleryDispatcher


def test_the_installed_dispatcher_is_the_workers_celery_one() -> None:
    assert isinstance(installed_dispatcher(), CeleryDispatcher)


def test_without_an_installed_dispatcher_the_error_names_the_entry_point_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(services, "entry_points", lambda group: EntryPoints(()))
    with pytest.raises(ConfigError) as refused:
        installed_dispatcher()
    assert DISPATCHERS in str(refused.value)
    assert "found none" in str(refused.value)
