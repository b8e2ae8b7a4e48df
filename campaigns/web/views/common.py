"""What the console's pages and the API share: run control, campaign YAML, uploads.

Run control (run now, schedule, pause, resume, cancel a campaign) is reached
through ``control()`` only: views never import tasks, Celery or kombu (an
import-linter contract), so the app factory plugs the Celery side in.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Protocol

import yaml
from flask import current_app

from campaigns.content.definitions import CampaignDefinition, parse_definition
from campaigns.errors import InputError, MeridianError
from campaigns.services import Services
from campaigns.web.context import RUN_CONTROL


class RunControl(Protocol):
    """A campaign's controls; each call audits as ``actor`` and queues what it must."""

    def run_now(self, svc: Services, campaign: str, *, actor: str) -> int | None: ...

    def schedule(self, svc: Services, campaign: str, *, actor: str) -> dict[str, Any]: ...

    def pause(self, svc: Services, campaign: str, *, actor: str) -> str: ...

    def resume(self, svc: Services, campaign: str, *, actor: str) -> str: ...

    def cancel(self, svc: Services, campaign: str, *, actor: str) -> str: ...


class BrokerUnreachable(MeridianError):
    """Redis, as Celery's broker, did not answer: nothing was queued; try again shortly."""


def control() -> RunControl:
    """The campaign controls the app factory plugged in: campaigns.sending.control,
    with the broker's errors raised as BrokerUnreachable (app.CeleryRunControl)."""
    plugged: RunControl = current_app.extensions[RUN_CONTROL]
    return plugged


def definition_yaml(definition: dict[str, Any]) -> str:
    text: str = yaml.safe_dump(definition, sort_keys=False, allow_unicode=True)
    return text


def definition_from_yaml(text: str, source: str) -> CampaignDefinition:
    """A campaign definition from YAML text; InputError names the line or the field."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise InputError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    return parse_definition(data, source)


@contextmanager
def saved_upload(source: IO[bytes], name: str) -> Iterator[Path]:
    """The upload as a private temporary file (the import reads its file twice)."""
    with tempfile.TemporaryDirectory(prefix="meridian-upload-") as folder:
        path = Path(folder) / name
        with path.open("wb") as target:
            shutil.copyfileobj(source, target)
        yield path
