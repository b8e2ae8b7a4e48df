"""The Flask app factory. ``meridian web`` serves it.

The one web module that imports the workers' side (tasks): it plugs the Celery
dispatcher into the services, so the views never import it.
"""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from campaigns.services import Services, installed_dispatcher
from campaigns.web import auth, failures, security
from campaigns.web.context import plug_services
from campaigns.web.views import (
    ab,
    api,
    api_reports,
    api_results,
    api_review,
    approval,
    campaigns,
    console,
    dashboard,
    health,
    inbox,
    login,
    metrics,
    patients,
    profile,
    public,
    review,
    run_export,
    runs,
    studio_copy,
    studio_exchange,
    studio_form,
    tryout,
    users,
    webhooks,
)

# The console's route groups: importing each adds its views to console.bp.
CONSOLE_GROUPS = (
    dashboard,
    patients,
    campaigns,
    studio_form,
    studio_exchange,
    studio_copy,
    ab,
    approval,
    tryout,
    profile,
    runs,
    run_export,
    review,
    inbox,
    users,
)
# /healthz, /readyz and /metrics: one open blueprint (health.bp), each its own proof.
HEALTH_ROUTES = (health, metrics)
# The API's routes beyond api.py's: importing each adds its routes to api.bp.
API_GROUPS = (api_review, api_results, api_reports)


def create_app(svc: Services) -> Flask:
    app = Flask(__name__, template_folder="templates", static_folder="static")
    production = svc.settings.env == "production"
    app.config.update(
        SECRET_KEY=svc.settings.secret_key.get_secret_value(),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=production or svc.settings.public_url.startswith("https://"),
        MAX_CONTENT_LENGTH=64 * 1024 * 1024,
    )
    if svc.settings.trusted_proxies > 0:
        # Behind the TLS proxy every request comes from the proxy's address: take the
        # client's from the headers the trusted proxies set (the sign-in limit counts
        # failures per address), and https from X-Forwarded-Proto.
        hops = svc.settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    plug_services(app, svc)
    if not svc.has_dispatcher:  # run control queues work for the workers through it
        svc.dispatcher = installed_dispatcher()
    failures.install(app)  # a request id before anything logs
    auth.install(app)  # next: a stranger is sent to /login before any view runs
    for blueprint in (public.bp, webhooks.bp, login.bp, console.bp, api.bp, health.bp):
        app.register_blueprint(blueprint)
    # The API takes bearer tokens, never cookies: a forged request carries no token.
    # The public routes check their own proof (a Twilio signature, a signed link).
    security.install(app, csrf_exempt=(api.bp, public.bp, webhooks.bp, health.bp), hsts=production)
    return app
