"""The JSON API under /api, for scripts: what the CLI does, over HTTP.

Authentication is a bearer token from ``POST /api/token`` and never a cookie, so
the API is exempt from CSRF checks: a forged cross-site request carries no token.
Errors answer ``{"error": ..., "problems": [{"where": ..., "reason": ...}]}``.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException
from werkzeug.utils import secure_filename

from campaigns.clock import schedules
from campaigns.errors import InputError, NotFound, Problem
from campaigns.people.patients import import_patients
from campaigns.sending import runs
from campaigns.services import Services
from campaigns.web import auth, console
from campaigns.web.app import services_of
from campaigns.web.auth import current_staff, require_role

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api")

_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/plain")


def _svc() -> Services:
    return services_of(current_app)


def _actor() -> str:
    staff = current_staff()
    return f"api:{staff.username}" if staff else "api"


def _error(status: int, message: str, problems: list[Problem] | None = None) -> Response:
    response = jsonify(
        error=message, problems=[{"where": p.where, "reason": p.reason} for p in problems or []]
    )
    response.status_code = status
    return response


@bp.errorhandler(InputError)
def _bad_input(exc: InputError) -> Response:
    return _error(422, exc.message, exc.problems)


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound) -> Response:
    return _error(404, str(exc))


@bp.errorhandler(RedisError)
@bp.errorhandler(OperationalError)
def _broker_down(_: Exception) -> Response:
    log.exception("API request: the broker could not be reached")
    return _error(503, "could not reach Redis (the broker); try again shortly")


@bp.errorhandler(HTTPException)
def _http(exc: HTTPException) -> Response:
    return _error(exc.code or 500, exc.description or exc.name)


# tokens -------------------------------------------------------------------------------


@bp.post("/token")
def token() -> ResponseReturnValue:
    """Trade a username and password for a bearer token (JSON or form body)."""
    body: Any = request.get_json(silent=True) if request.is_json else request.form
    if not isinstance(body, dict) and body is not request.form:
        return _error(400, "send a JSON object with username and password")
    username, password = str(body.get("username") or ""), str(body.get("password") or "")
    try:
        staff = auth.authenticate(_svc(), username, password)
    except auth.TooManySignIns as exc:
        log.warning("an API token request was refused: too many failures for that username")
        response = _error(429, f"too many failed sign-ins; try again in {exc.retry_after_s} s")
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response
    if staff is None:
        log.info("an API token request failed")
        return _error(401, "wrong username or password")
    issued = auth.issue_token(current_app, _svc(), staff)
    log.info("API token issued to staff user %s", staff.username)
    return jsonify(
        token=issued,
        token_type="Bearer",  # noqa: S106 - the scheme's name
        expires_in=auth.TOKEN_MAX_AGE_S,
        role=staff.role,
    )


# campaigns ------------------------------------------------------------------------------


def _campaign_summary(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "status": row["status"],
        "channels": row["definition"]["channels"],
        "schedule": row["definition"]["schedule"],
        "updated_at": row["updated_at"].isoformat(),
    }


@bp.get("/campaigns")
@require_role("viewer")
def campaigns_list() -> ResponseReturnValue:
    return jsonify(campaigns=[_campaign_summary(r) for r in _svc().campaigns.all()])


@bp.get("/campaigns/<name>")
@require_role("viewer")
def campaign_show(name: str) -> ResponseReturnValue:
    svc = _svc()
    row, definition = runs.load_campaign(svc, name)
    schedule = definition.schedule.to_schedule(svc.settings.clinic_timezone)
    return jsonify(
        {
            **_campaign_summary(row),
            "definition": row["definition"],
            "findings": row["findings"],
            "next_sends": [d.isoformat() for d in schedules.next_sends(schedule, svc.now(), 5)],
            "runs": [
                {"id": r["id"], "occurrence": r["occurrence"], "status": r["status"]}
                for r in svc.ledger.runs_of(int(row["id"]))
            ],
        }
    )


@bp.post("/campaigns")
@require_role("marketer")
def campaign_apply() -> ResponseReturnValue:
    """Create or update a campaign from its YAML (or the same fields as a JSON object)."""
    from campaigns.content.definitions import parse_definition

    if request.is_json:
        definition = parse_definition(request.get_json(silent=True), "request body")
    elif request.mimetype in _YAML_TYPES:
        definition = console.definition_from_yaml(request.get_data(as_text=True), "request body")
    else:
        return _error(415, f"send the campaign as YAML ({_YAML_TYPES[0]}) or JSON")
    applied = runs.save_definition(_svc(), definition, actor=_actor(), source="request body")
    return jsonify(
        id=applied.campaign_id,
        name=applied.name,
        findings=applied.findings,
        unacknowledged=applied.unacknowledged,
    )


@bp.post("/campaigns/<name>/schedule")
@require_role("marketer")
def campaign_schedule(name: str) -> ResponseReturnValue:
    from tasks import control

    row = control.schedule(_svc(), name, actor=_actor())
    return jsonify(name=row["name"], status="scheduled")


@bp.post("/campaigns/<name>/run")
@require_role("marketer")
def campaign_run(name: str) -> ResponseReturnValue:
    from tasks import control

    row, _ = runs.load_campaign(_svc(), name)
    if row["status"] != "scheduled":
        return _error(409, f"campaign {name} is {row['status']}; schedule it (approve) first")
    run_id = control.run_now(_svc(), name, actor=_actor())
    if run_id is None:
        return _error(409, f"campaign {name}: this occurrence already has a run")
    response = jsonify(run_id=run_id)
    response.status_code = 202
    return response


# runs -----------------------------------------------------------------------------------


@bp.get("/runs/<int:run_id>")
@require_role("viewer")
def run_show(run_id: int) -> ResponseReturnValue:
    return jsonify(runs.run_status(_svc(), run_id))


@bp.post("/runs/<int:run_id>/<any(pause, resume, cancel):action>")
@require_role("marketer")
def run_control(run_id: int, action: str) -> ResponseReturnValue:
    svc, actor = _svc(), _actor()
    runs.run_status(svc, run_id)  # 404 first
    if action == "pause":
        runs.pause_run(svc, run_id, actor=actor)
    elif action == "resume":
        runs.resume_run(svc, run_id, actor=actor)
    else:
        runs.cancel_run(svc, run_id, actor=actor)
    return jsonify(runs.run_status(svc, run_id))


# patients ------------------------------------------------------------------------------


@bp.post("/patients/import")
@require_role("marketer")
def patients_import() -> ResponseReturnValue:
    """A patient CSV as the multipart field ``file`` or as a text/csv body."""
    svc = _svc()
    upload = request.files.get("file")
    if upload is not None:
        source, name = upload.stream, secure_filename(upload.filename or "") or "upload.csv"
    elif request.mimetype == "text/csv":
        source, name = request.stream, "upload.csv"
    else:
        return _error(415, "send the CSV as multipart field 'file' or with Content-Type text/csv")
    flag = {"1", "true", "yes", "on"}
    with console.saved_upload(source, name) as path:
        try:
            report = import_patients(
                path,
                svc.patients,
                region=svc.settings.default_region,
                dry_run=request.args.get("dry_run", "").lower() in flag,
                skip_invalid=request.args.get("skip_invalid", "").lower() in flag,
                actor=_actor(),
            )
        except InputError as exc:
            return _error(422, exc.message.replace(str(path), name), exc.problems)
    return jsonify({**report.to_dict(), "file": name})


# the document -------------------------------------------------------------------------


@bp.get("/openapi.json")
@require_role("viewer")
def openapi() -> ResponseReturnValue:
    return jsonify(OPENAPI)


def _op(
    summary: str, *, body: str | None = None, ok: str = "200", role: str = "viewer"
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "description": f"Needs role {role} or above.",
        "responses": {
            ok: {"description": "OK", "content": {"application/json": {}}},
            "401": {"$ref": "#/components/responses/Unauthorized"},
            "403": {"$ref": "#/components/responses/Forbidden"},
            "404": {"$ref": "#/components/responses/Error"},
            "422": {"$ref": "#/components/responses/Error"},
        },
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {body: {}}}
    return op


_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_RUN = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "integer"}}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Meridian API", "version": "1"},
    "servers": [{"url": "/api"}],
    "security": [{"bearer": []}],
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error", "problems"],
                "properties": {
                    "error": {"type": "string"},
                    "problems": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "where": {"type": "string"},
                                "reason": {"type": "string"},
                            },
                        },
                    },
                },
            }
        },
        "responses": {
            name: {
                "description": text,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
            for name, text in (
                ("Error", "What was wrong, and where"),
                ("Unauthorized", "No valid bearer token"),
                ("Forbidden", "The token's role may not do this"),
            )
        },
    },
    "paths": {
        "/token": {
            "post": {
                **_op("Trade username and password for a bearer token", body="application/json"),
                "security": [],
            }
        },
        "/campaigns": {
            "get": _op("List campaigns"),
            "post": _op(
                "Create or update a campaign from its YAML",
                body="application/yaml",
                role="marketer",
            ),
        },
        "/campaigns/{name}": {"get": {**_op("Show a campaign"), "parameters": [_NAME]}},
        "/campaigns/{name}/schedule": {
            "post": {**_op("Approve and schedule", role="marketer"), "parameters": [_NAME]}
        },
        "/campaigns/{name}/run": {
            "post": {**_op("Run now", ok="202", role="marketer"), "parameters": [_NAME]}
        },
        "/runs/{run_id}": {"get": {**_op("A run's status and counts"), "parameters": [_RUN]}},
        **{
            f"/runs/{{run_id}}/{action}": {
                "post": {
                    **_op(f"{action.capitalize()} a run", role="marketer"),
                    "parameters": [_RUN],
                }
            }
            for action in ("pause", "resume", "cancel")
        },
        "/patients/import": {
            "post": {
                **_op("Import a patient CSV", body="text/csv", role="marketer"),
                "parameters": [
                    {"name": flag, "in": "query", "schema": {"type": "boolean"}}
                    for flag in ("dry_run", "skip_invalid")
                ],
            }
        },
        "/openapi.json": {"get": _op("This document")},
    },
}
