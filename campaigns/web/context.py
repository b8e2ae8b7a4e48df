"""What a request reaches beyond Flask: this app's ``Services``, put in by the factory."""

from __future__ import annotations

from flask import Flask, current_app

from campaigns.services import Services

SERVICES = "meridian"


def plug_services(app: Flask, svc: Services) -> None:
    app.extensions[SERVICES] = svc


def services() -> Services:
    """The Services of the app serving this request."""
    svc: Services = current_app.extensions[SERVICES]
    return svc
