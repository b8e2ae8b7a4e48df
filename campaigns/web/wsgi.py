"""The WSGI entry point production serves: ``gunicorn campaigns.web.wsgi:app``.

Builds Services from the environment (MERIDIAN_*; production's checks included)
and the app as ``meridian web`` does: create_app plugs the workers' dispatcher in.
Each gunicorn worker imports this module after the fork, so each has its own
database pool and Redis connections; do not run gunicorn with ``--preload``.
"""

from __future__ import annotations

from campaigns import logs
from campaigns.services import Services
from campaigns.settings import load_settings
from campaigns.web.app import create_app

settings = load_settings()
# The same log lines as the worker and beat (MERIDIAN_LOG_FORMAT, MERIDIAN_LOG_LEVEL).
logs.configure(settings.log_format, settings.log_level or "INFO")
app = create_app(Services(settings))
