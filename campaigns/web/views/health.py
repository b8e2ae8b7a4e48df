"""``/healthz`` and ``/readyz`` for load balancers and orchestrators: no login, no PHI.

``/healthz`` says the process answers (it touches nothing). ``/readyz`` runs the
checks of campaigns.sending.health (database, migrations, Redis, a worker seen for
each queue, a beat seen) and answers 503 when one fails, with every check's
verdict in JSON. The blueprint is open (campaigns.web.auth lets "health" through);
``/metrics`` is in campaigns.web.views.metrics, on the same blueprint.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from flask.typing import ResponseReturnValue

from campaigns.sending import health
from campaigns.web.context import services

bp = Blueprint("health", __name__)

_NO_STORE = {"Cache-Control": "no-store"}


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify(status="ok"), 200, _NO_STORE


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    checks = health.readiness(services())
    ready = all(c.ok for c in checks)
    body: Response = jsonify(
        status="ready" if ready else "not ready",
        checks={c.name: {"ok": c.ok, "detail": c.detail} for c in checks},
    )
    return body, 200 if ready else 503, _NO_STORE
