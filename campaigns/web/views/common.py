"""What the console's pages and the API share: campaign YAML and uploads.

Run control (run now, schedule, pause, resume, cancel a campaign) is
campaigns.sending.control, called directly: it queues through ``svc.dispatcher``,
which the app factory plugs in, so views never import tasks, Celery or kombu (an
import-linter contract). A broker that does not answer reaches them as
campaigns.errors.BrokerUnavailable.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import yaml

from campaigns.content.definitions import CampaignDefinition, parse_definition
from campaigns.errors import InputError

# What a page says when the broker does not answer: to the marketer, what happened and
# what to do; the word an operator needs (Redis) last.
BROKER_DOWN = (
    "the sending service is not answering, so nothing was queued or sent. Try again in "
    "a minute; if it keeps happening, ask whoever runs Meridian to check Redis."
)


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
