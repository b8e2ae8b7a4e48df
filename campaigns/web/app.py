"""The Flask app factory. ``meridian web`` serves it."""

from __future__ import annotations

from flask import Flask

from campaigns.services import Services


def create_app(svc: Services) -> Flask:
    app = Flask(__name__, template_folder="templates", static_folder="static")
    app.config.update(
        SECRET_KEY=svc.settings.secret_key.get_secret_value(),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=svc.settings.public_url.startswith("https://"),
        MAX_CONTENT_LENGTH=64 * 1024 * 1024,
    )
    app.extensions["meridian"] = svc

    from campaigns.web import public

    app.register_blueprint(public.bp)
    try:
        from campaigns.web import console
    except ImportError:  # the console lands separately from the public routes
        return app
    console.init_app(app)
    return app


def services_of(app: Flask) -> Services:
    svc: Services = app.extensions["meridian"]
    return svc
