"""gunicorn's settings for the console: ``gunicorn -c python:campaigns.web.gunicorn_conf
campaigns.web.wsgi:app``.

gunicorn writes its own access lines, outside Python's logging, with the raw request
line: an unsubscribe link's token or an API token in a query string would land in the
log. Its logger class here cuts them out (``campaigns.logs.redact``, the rule the
app's own lines follow).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gunicorn.glogging import Logger

from campaigns import logs

accesslog = "-"
logger_class = "campaigns.web.gunicorn_conf.RedactingLogger"


class RedactingLogger(Logger):  # type: ignore[misc]
    def atoms(
        self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta
    ) -> dict[str, Any]:
        found: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        return {k: logs.redact(v) if isinstance(v, str) else v for k, v in found.items()}
