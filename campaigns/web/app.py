"""The Flask app factory. ``meridian web`` serves it.

The one web module that imports the workers' side (tasks, kombu): it plugs run
control into the app, so the views never import them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask

from campaigns.services import Services
from campaigns.web import auth, security
from campaigns.web.context import RUN_CONTROL, plug_services
from campaigns.web.views import (
    api,
    campaigns,
    console,
    dashboard,
    health,
    login,
    metrics,
    patients,
    public,
    review,
    runs,
)
from campaigns.web.views.common import BrokerUnreachable, RunControl

# The console's route groups: importing each adds its views to console.bp.
CONSOLE_GROUPS = (dashboard, patients, campaigns, runs, review)
# /healthz, /readyz and /metrics: one open blueprint (health.bp), each its own proof.
HEALTH_ROUTES = (health, metrics)


def create_app(svc: Services) -> Flask:
    app = Flask(__name__, template_folder="templates", static_folder="static")
    app.config.update(
        SECRET_KEY=svc.settings.secret_key.get_secret_value(),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=svc.settings.public_url.startswith("https://"),
        MAX_CONTENT_LENGTH=64 * 1024 * 1024,
    )
    plug_services(app, svc)
    if not svc.has_dispatcher:  # run control queues work for the workers through it
        from tasks.app import dispatcher

        svc.dispatcher = dispatcher()
    app.extensions[RUN_CONTROL] = CeleryRunControl()
    auth.install(app)  # first: a stranger is sent to /login before anything else runs
    for blueprint in (public.bp, login.bp, console.bp, api.bp, health.bp):
        app.register_blueprint(blueprint)
    # The API takes bearer tokens, never cookies: a forged request carries no token.
    # The public routes check their own proof (a Twilio signature, a signed link).
    security.install(app, csrf_exempt=(api.bp, public.bp, health.bp))
    return app


class CeleryRunControl(RunControl):
    """campaigns.sending.control, with kombu's OperationalError (the broker did not answer) raised
    as BrokerUnreachable: the one place the web meets kombu."""

    def run_now(self, svc: Services, campaign: str, *, actor: str) -> int | None:
        with _broker() as control:
            run_id: int | None = control.run_now(svc, campaign, actor=actor)
            return run_id

    def schedule(self, svc: Services, campaign: str, *, actor: str) -> dict[str, Any]:
        with _broker() as control:
            row: dict[str, Any] = control.schedule(svc, campaign, actor=actor)
            return row

    def pause(self, svc: Services, campaign: str, *, actor: str) -> str:
        with _broker() as control:
            return str(control.pause(svc, campaign, actor=actor))

    def resume(self, svc: Services, campaign: str, *, actor: str) -> str:
        with _broker() as control:
            return str(control.resume(svc, campaign, actor=actor))

    def cancel(self, svc: Services, campaign: str, *, actor: str) -> str:
        with _broker() as control:
            return str(control.cancel(svc, campaign, actor=actor))


@contextmanager
def _broker() -> Iterator[Any]:
    # Imported on first use, as before: Celery's app is built from the environment.
    from kombu.exceptions import OperationalError

    from campaigns.sending import control

    try:
        yield control
    except OperationalError as exc:
        raise BrokerUnreachable(f"the broker could not be reached ({type(exc).__name__})") from exc
