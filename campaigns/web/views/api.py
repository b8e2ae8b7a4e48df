"""The JSON API under /api, for scripts: what the CLI does, over HTTP.

Authentication is a bearer token from ``POST /api/token`` and never a cookie, so
the API is exempt from CSRF checks: a forged cross-site request carries no token.
Bodies are read and replies built through the models in schemas.py, which the
document at /api/openapi.json is generated from. Errors answer
``{"error": ..., "problems": [{"where": ..., "reason": ...}]}``.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from flask import Blueprint, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.utils import secure_filename

from campaigns.content import catalogue
from campaigns.content.definitions import parse_definition
from campaigns.domain.states import CampaignState
from campaigns.errors import BrokerUnavailable, InputError, NotFound, Problem
from campaigns.people import inbox
from campaigns.people.patients import import_patients
from campaigns.sending import control, runs
from campaigns.web import auth
from campaigns.web.context import services
from campaigns.web.security import require_role, signed_in_as
from campaigns.web.views import schemas as s
from campaigns.web.views.common import definition_from_yaml, saved_upload
from campaigns.web.views.openapi import OPENAPI

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api")

_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/plain")


def _actor() -> str:
    staff = auth.current_staff()
    return f"api:{staff.username}" if staff else "api"


def _reply(body: BaseModel, status: int = 200) -> Response:
    response = jsonify(s.dump(body))
    response.status_code = status
    return response


def _error(status: int, message: str, problems: list[Problem] | None = None) -> Response:
    found = [s.Problem(where=p.where, reason=p.reason) for p in problems or []]
    return _reply(s.ErrorReply(error=message, problems=found), status)


@bp.errorhandler(InputError)
def _bad_input(exc: InputError) -> Response:
    return _error(422, exc.message, exc.problems)


@bp.errorhandler(ValidationError)
def _bad_body(exc: ValidationError) -> Response:
    found = [Problem(".".join(str(p) for p in e["loc"]) or "body", e["msg"]) for e in exc.errors()]
    return _error(422, "the request body is not what this route reads", found)


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound) -> Response:
    return _error(404, str(exc))


@bp.errorhandler(BrokerUnavailable)
def _broker_down(_: BrokerUnavailable) -> Response:
    log.exception("API request: the broker could not be reached")
    return _error(503, "could not reach Redis (the broker); try again shortly")


@bp.errorhandler(HTTPException)
def _http(exc: HTTPException) -> Response:
    return _error(exc.code or 500, exc.description or exc.name)


# tokens -------------------------------------------------------------------------------


@bp.post("/token")
def token() -> ResponseReturnValue:
    """Trade a username and password for a bearer token (JSON or form body)."""
    body: Any = request.get_json(silent=True) if request.is_json else request.form.to_dict()
    if not isinstance(body, dict):
        return _error(400, "send a JSON object with username and password")
    asked = s.TokenRequest.model_validate(body)
    try:
        staff = auth.authenticate(
            services(), asked.username, asked.password, request.remote_addr or "unknown"
        )
    except auth.TooManySignIns as exc:
        log.warning("an API token request was refused: too many failures for that username")
        response = _error(429, f"too many failed sign-ins; try again in {exc.retry_after_s} s")
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response
    if staff is None:
        log.info("an API token request failed")
        return _error(401, "wrong username or password")
    issued = auth.issue_token(current_app, services(), staff)
    log.info("API token issued to staff user %s", staff.username)
    reply = {"token": issued, "expires_in": auth.TOKEN_MAX_AGE_S, "role": staff.role}
    return _reply(s.TokenReply.model_validate(reply))


# campaigns ------------------------------------------------------------------------------


@bp.get("/campaigns")
@require_role("viewer")
def campaigns_list() -> ResponseReturnValue:
    rows = services().campaigns.all()
    listed = [catalogue.campaign_listing(r) for r in rows]
    return _reply(s.CampaignList.model_validate({"campaigns": listed}))


@bp.get("/campaigns/<name>")
@require_role("viewer")
def campaign_show(name: str) -> ResponseReturnValue:
    shown = catalogue.campaign_summary(services(), name).to_dict()
    return _reply(s.CampaignDetail.model_validate(shown))


@bp.post("/campaigns")
@require_role("marketer")
def campaign_apply() -> ResponseReturnValue:
    """Create or update a campaign from its YAML (or the same fields as a JSON object)."""
    if request.is_json:
        definition = parse_definition(request.get_json(silent=True), "request body")
    elif request.mimetype in _YAML_TYPES:
        definition = definition_from_yaml(request.get_data(as_text=True), "request body")
    else:
        return _error(415, f"send the campaign as YAML ({_YAML_TYPES[0]}) or JSON")
    applied = catalogue.save_definition(
        services(),
        definition,
        actor=_actor(),
        source="request body",
        may_acknowledge=signed_in_as("admin"),
    )
    reply = {
        "id": applied.campaign_id,
        "name": applied.name,
        "findings": applied.findings,
        "unacknowledged": applied.unacknowledged,
    }
    return _reply(s.AppliedCampaign.model_validate(reply))


@bp.post("/campaigns/<name>/schedule")
@require_role("marketer")
def campaign_schedule(name: str) -> ResponseReturnValue:
    row = control.schedule(services(), name, actor=_actor())
    return _reply(s.ScheduledCampaign(name=row["name"]))


@bp.post("/campaigns/<name>/run")
@require_role("marketer")
def campaign_run(name: str) -> ResponseReturnValue:
    row, _ = catalogue.load_campaign(services(), name)
    if row["status"] != CampaignState.SCHEDULED:
        return _error(409, f"campaign {name} is {row['status']}; schedule it (approve) first")
    run_id = control.run_now(services(), name, actor=_actor())
    if run_id is None:
        return _error(409, f"campaign {name}: this occurrence already has a run")
    return _reply(s.RunStarted(run_id=run_id), 202)


# runs -----------------------------------------------------------------------------------


@bp.get("/runs/<int:run_id>")
@require_role("viewer")
def run_show(run_id: int) -> ResponseReturnValue:
    return _reply(s.RunStatus.model_validate(runs.run_status(services(), run_id)))


@bp.post("/runs/<int:run_id>/<any(pause, resume, cancel):action>")
@require_role("marketer")
def run_control(run_id: int, action: str) -> ResponseReturnValue:
    svc, actor = services(), _actor()
    runs.run_status(svc, run_id)  # 404 first
    if action == "pause":
        runs.pause_run(svc, run_id, actor=actor)
    elif action == "resume":
        runs.resume_run(svc, run_id, actor=actor)
    else:
        runs.cancel_run(svc, run_id, actor=actor)
    return _reply(s.RunStatus.model_validate(runs.run_status(svc, run_id)))


# patients ------------------------------------------------------------------------------


@bp.post("/patients/import")
@require_role("marketer")
def patients_import() -> ResponseReturnValue:
    """A patient CSV as the multipart field ``file`` or as a text/csv body."""
    svc = services()
    upload = request.files.get("file")
    if upload is not None:
        source, name = upload.stream, secure_filename(upload.filename or "") or "upload.csv"
    elif request.mimetype == "text/csv":
        source, name = request.stream, "upload.csv"
    else:
        return _error(415, "send the CSV as multipart field 'file' or with Content-Type text/csv")
    options = s.ImportOptions.model_validate(request.args.to_dict())
    with saved_upload(source, name) as path:
        try:
            report = import_patients(
                path,
                svc.patients,
                region=svc.settings.default_region,
                dry_run=options.dry_run,
                skip_invalid=options.skip_invalid,
                actor=_actor(),
            )
        except InputError as exc:
            return _error(422, exc.message.replace(str(path), name), exc.problems)
    return _reply(s.ImportReply.model_validate({**report.to_dict(), "file": name}))


# the inbox ----------------------------------------------------------------------------


M = TypeVar("M", bound=BaseModel)


def _asked(model: type[M], data: object) -> M:
    """The request read through ``model``; InputError (422) naming each bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        found = [
            Problem(".".join(str(p) for p in e["loc"]) or "body", e["msg"]) for e in exc.errors()
        ]
        raise InputError("the request is not what this route reads", found) from exc


def _body() -> dict[str, Any]:
    body: Any = request.get_json(silent=True) if request.is_json else request.form.to_dict()
    return body if isinstance(body, dict) else {}


def _patients(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keep = ("id", "external_id", "first_name", "last_name", "sms_opt_in")
    return [{k: p[k] for k in keep} for p in found]


@bp.get("/inbox")
@require_role("viewer")
def inbox_threads() -> ResponseReturnValue:
    svc = services()
    query = _asked(s.InboxQuery, request.args.to_dict())
    threads = [
        {
            "message_id": t["last_id"],
            "from_phone": t["from_phone"],
            "patients": _patients(t["patients"]),
            "last_body": t["last"].get("body") or "",
            "last_kind": t["last"].get("kind") or "other",
            "last_actions": t["last"].get("actions"),
            "last_at": t["last_at"],
            "open": t["open"],
            "messages": t["messages"],
        }
        for t in svc.inbound.threads(query.view)
    ]
    reply = {"view": query.view, "open_total": svc.inbound.open_count(), "threads": threads}
    return _reply(s.InboxReply.model_validate(reply))


@bp.get("/inbox/<int:message_id>")
@require_role("viewer")
def inbox_thread(message_id: int) -> ResponseReturnValue:
    svc = services()
    message = inbox.thread_of(svc, message_id)
    phone = str(message["from_phone"])
    current = svc.suppressions.current("sms", phone) if phone else None
    messages = [
        {
            "direction": m["direction"],
            "id": m["id"],
            "at": m["at"],
            "body": m["body"],
            "kind": m.get("kind"),
            "actions": m.get("actions"),
            "auto_reply": m.get("auto_reply"),
            "needs_review": bool(m.get("flagged")) and not m.get("reviewed_by"),
            "done_by": m.get("reviewed_by"),
            "sent_by": m.get("sent_by"),
            "state": m.get("state"),
        }
        for m in svc.inbound.thread_messages(phone)
    ]
    reply = {
        "message_id": message_id,
        "from_phone": phone,
        "patients": _patients(svc.inbound.thread_patients(phone)),
        "suppressed": (
            {"reason": current.reason, "at": current.at, "actor": current.actor}
            if current is not None and current.suppressed
            else None
        ),
        "messages": messages,
    }
    return _reply(s.ThreadReply.model_validate(reply))


@bp.post("/inbox/<int:message_id>/reply")
@require_role("marketer")
def inbox_reply(message_id: int) -> ResponseReturnValue:
    asked = _asked(s.ReplyRequest, _body())
    sent = inbox.send_reply(services(), message_id, asked.body, actor=_actor())
    reply = s.ReplySent(reply_id=sent.reply_id, state="sent" if sent.state == "sent" else "failed")
    if sent.error:
        reply.error = sent.error
    return _reply(reply, 201 if sent.state == "sent" else 502)


@bp.post("/inbox/<int:message_id>/done")
@require_role("marketer")
def inbox_done(message_id: int) -> ResponseReturnValue:
    return _reply(s.DoneReply(marked=inbox.mark_done(services(), message_id, actor=_actor())))


@bp.post("/inbox/<int:message_id>/suppress")
@require_role("marketer")
def inbox_suppress(message_id: int) -> ResponseReturnValue:
    asked = _asked(s.SuppressRequest, _body())
    added = inbox.suppress_thread(services(), message_id, actor=_actor(), reason=asked.reason)
    return _reply(s.Suppressed(added=added))


@bp.post("/patients/<int:patient_id>/consent/restore")
@require_role("marketer")
def consent_restore(patient_id: int) -> ResponseReturnValue:
    svc = services()
    asked = _asked(s.RestoreRequest, _body())
    inbox.restore_consent(svc, patient_id, asked.channel, reason=asked.reason, actor=_actor())
    now = svc.consent.current(patient_id)
    reply = {"patient_id": patient_id, "sms_opt_in": now["sms"], "email_opt_in": now["email"]}
    return _reply(s.ConsentNow.model_validate(reply))


# the document -------------------------------------------------------------------------


@bp.get("/openapi.json")
@require_role("viewer")
def openapi() -> ResponseReturnValue:
    return jsonify(OPENAPI)
