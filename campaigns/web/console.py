"""The staff console: server-rendered pages over the campaigns services.

Patient data stays out of URLs (patients are addressed by their internal id and
searched with a POST), because URLs end up in access logs.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO, Any, TypeVar
from zoneinfo import ZoneInfo

import yaml
from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.utils import secure_filename

from campaigns.clock import schedules
from campaigns.content import compliance, sms
from campaigns.content.definitions import CampaignDefinition, parse_definition
from campaigns.content.rendering import build_context
from campaigns.errors import InputError, NotFound, Problem
from campaigns.people.patients import import_patients
from campaigns.sending import runs
from campaigns.services import Services
from campaigns.store import console_queries as q
from campaigns.web import auth
from campaigns.web.app import services_of
from campaigns.web.auth import current_staff, require_role

log = logging.getLogger(__name__)

bp = Blueprint("console", __name__)

CHART_DAYS = 14
FINAL_RUN_STATES = frozenset({"finished", "cancelled", "missed"})
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SECURITY_HEADERS = {
    # Inline styles are allowed for the e-mail preview's srcdoc frame; scripts are not.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: https:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
NEW_CAMPAIGN_YAML = """\
name: my-campaign
description: ""
channels: [sms, email]
channel_policy: all_consented
templates: cold-and-flu-season
audience:
  tags_any: [active]
  tags_none: [do-not-market]
schedule:
  once: {once}
  send_time: "10:00"
"""

T = TypeVar("T")


def init_app(app: Flask) -> None:
    """Login enforcement, CSRF protection, the console and the API."""
    from campaigns.web import api

    auth.install(app)  # first: a stranger is sent to /login before anything else runs
    app.register_blueprint(bp)
    app.register_blueprint(api.bp)
    csrf = CSRFProtect(app)
    csrf.exempt(api.bp)  # bearer tokens, never cookies: a forged request carries no token
    public = app.blueprints.get("public")
    if public is not None:
        csrf.exempt(public)
    app.register_error_handler(CSRFError, _csrf_refused)
    app.after_request(_harden)
    app.jinja_env.filters["when"] = _format_when
    app.jinja_env.filters["wall"] = _format_wall
    app.jinja_env.filters["yesno"] = _yesno
    app.jinja_env.globals["staff"] = current_staff
    check_write_roles(app)


def check_write_roles(app: Flask) -> None:
    """Refuse to start when a console or API view that accepts writes states no role."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] not in ("console", "api", "auth"):
            continue
        open_ = rule.endpoint in auth.OPEN_ENDPOINTS
        writes = bool(rule.methods and rule.methods & _WRITES)
        if writes and not open_ and auth.role_of(app.view_functions[rule.endpoint]) is None:
            raise RuntimeError(f"{rule.endpoint} accepts writes without @require_role")


def _harden(response: Response) -> Response:
    if request.blueprint in ("console", "auth", "api"):
        response.headers.update(_SECURITY_HEADERS)
        # Pages show patients' names and contacts: keep them out of shared caches.
        response.headers["Cache-Control"] = "no-store"
    return response


def _csrf_refused(error: CSRFError) -> ResponseReturnValue:
    log.info("refused a form post without a valid CSRF token: %s", error.description)
    page = render_template(
        "console/error.html",
        title="Form expired",
        message="The form was stale or not sent by this site. Go back, reload it and try again.",
    )
    return page, 400


def _yesno(value: bool | None) -> str:
    return "no record" if value is None else ("yes" if value else "no")


def _zone() -> ZoneInfo:
    return ZoneInfo(services_of(current_app).settings.clinic_timezone)


def _format_when(value: datetime | date | str | None) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:  # the ISO 8601 instants run_status hands over
            instant = datetime.fromisoformat(value)
        except ValueError:
            return value
        return _format_when(instant)
    if isinstance(value, datetime):
        return value.astimezone(_zone()).strftime("%Y-%m-%d %H:%M %Z")
    return value.isoformat()


def _format_wall(value: datetime) -> str:
    """A send time as the wall clock reads it; each patient gets it in their own zone."""
    return value.strftime("%a %Y-%m-%d %H:%M")


def _svc() -> Services:
    return services_of(current_app)


def _actor() -> str:
    staff = current_staff()
    return staff.username if staff else "unknown"


def _fragment() -> bool:
    return request.headers.get("HX-Request") == "true"


def _problems(exc: InputError) -> list[Problem]:
    return exc.problems or [Problem("input", exc.message)]


@bp.errorhandler(NotFound)
def _not_found(error: NotFound) -> ResponseReturnValue:
    return render_template("console/error.html", title="Not found", message=str(error)), 404


@bp.errorhandler(403)
def _forbidden(_: Exception) -> ResponseReturnValue:
    message = "Your role can read this page but not change anything."
    return render_template("console/error.html", title="Not allowed", message=message), 403


# dashboard ------------------------------------------------------------------------


@bp.get("/")
@require_role("viewer")
def dashboard() -> ResponseReturnValue:
    svc = _svc()
    now = svc.now()
    since = q.day_start((now - timedelta(days=CHART_DAYS - 1)).date())
    chart = _chart(q.messages_per_day(svc.db, since), since.date())
    return render_template(
        "console/dashboard.html",
        upcoming=upcoming_sends(svc),
        recent=q.recent_runs(svc.db, 10),
        chart=chart,
        patients=svc.patients.count(),
    )


def upcoming_sends(svc: Services, per_campaign: int = 3) -> list[dict[str, Any]]:
    """The next occurrences of every scheduled campaign, soonest first."""
    found = []
    for row in svc.campaigns.all():
        if row["status"] != "scheduled":
            continue
        definition = parse_definition(row["definition"], f"campaign {row['name']}")
        schedule = definition.schedule.to_schedule(svc.settings.clinic_timezone)
        for when in schedules.next_sends(schedule, svc.now(), per_campaign):
            found.append({"campaign": row["name"], "when": when})
    return sorted(found, key=lambda s: s["when"])


_CHART_STATES = ("delivered", "sent", "undelivered", "failed", "unknown", "skipped")


def _chart(rows: list[tuple[date, str, int]], first: date) -> dict[str, Any]:
    """Bars for a stacked chart: one per day, one segment per outcome, heights in %."""
    per_day: dict[date, dict[str, int]] = {first + timedelta(days=i): {} for i in range(CHART_DAYS)}
    for day, state, n in rows:
        per_day.setdefault(day, {})[state] = n
    top = max((sum(v.values()) for v in per_day.values()), default=0) or 1
    bars = []
    for day, counts in sorted(per_day.items()):
        segments, y = [], 100.0
        for state in _CHART_STATES:
            height = 100.0 * counts.get(state, 0) / top
            if height:
                y -= height
                segments.append({"state": state, "y": y, "height": height, "n": counts[state]})
        bars.append(
            {"day": day, "total": sum(counts.values()), "segments": segments, "counts": counts}
        )
    return {"bars": bars, "states": _CHART_STATES, "top": top}


# patients -----------------------------------------------------------------------------


@bp.get("/patients")
@require_role("viewer")
def patients() -> ResponseReturnValue:
    return render_template("console/patients.html", count=_svc().patients.count())


@bp.post("/patients/search")
@require_role("viewer")
def patient_search() -> ResponseReturnValue:
    query = request.form.get("q", "")
    found = q.search_patients(_svc().db, query)
    if _fragment():
        return render_template("console/_patient_rows.html", found=found, query=query)
    count = _svc().patients.count()
    return render_template("console/patients.html", count=count, found=found, query=query)


@bp.post("/patients/import")
@require_role("marketer")
def patient_import() -> ResponseReturnValue:
    svc = _svc()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash("Choose a CSV file to import.", "error")
        return redirect(url_for("console.patients"))
    name = secure_filename(upload.filename) or "patients.csv"
    dry_run = request.form.get("dry_run") == "on"
    skip_invalid = request.form.get("skip_invalid") == "on"
    with saved_upload(upload.stream, name) as path:
        try:
            report = import_patients(
                path,
                svc.patients,
                region=svc.settings.default_region,
                dry_run=dry_run,
                skip_invalid=skip_invalid,
                actor=_actor(),
            )
        except InputError as exc:
            page = render_template(
                "console/patients.html",
                count=svc.patients.count(),
                refused=exc.message.replace(str(path), name),
                problems=_problems(exc),
            )
            return page, 422
    return render_template(
        "console/patients.html", count=svc.patients.count(), report=report, filename=name
    )


@contextmanager
def saved_upload(source: IO[bytes], name: str) -> Iterator[Path]:
    """The upload as a private temporary file (the import reads its file twice)."""
    with tempfile.TemporaryDirectory(prefix="meridian-upload-") as folder:
        path = Path(folder) / name
        with path.open("wb") as target:
            shutil.copyfileobj(source, target)
        yield path


@bp.get("/patients/<int:patient_id>")
@require_role("viewer")
def patient(patient_id: int) -> ResponseReturnValue:
    svc = _svc()
    found = q.patient(svc.db, patient_id)
    if found is None:
        raise NotFound(f"no patient with id {patient_id}")
    history = svc.consent.history(patient_id)
    return render_template("console/patient.html", patient=found, history=history)


# campaigns ------------------------------------------------------------------------------


@bp.get("/campaigns")
@require_role("viewer")
def campaigns() -> ResponseReturnValue:
    return render_template("console/campaigns.html", campaigns=_svc().campaigns.all())


@bp.get("/campaigns/new")
@require_role("marketer")
def campaign_new() -> ResponseReturnValue:
    once = (_svc().now() + timedelta(days=30)).date().isoformat()
    return render_template("console/campaign_form.html", text=NEW_CAMPAIGN_YAML.format(once=once))


@bp.get("/campaigns/<name>/edit")
@require_role("marketer")
def campaign_edit(name: str) -> ResponseReturnValue:
    row, _ = runs.load_campaign(_svc(), name)
    return render_template(
        "console/campaign_form.html", text=definition_yaml(row["definition"]), campaign=row
    )


def acknowledged_phrases(definition: CampaignDefinition) -> set[str]:
    """The lint phrases staff accepted in the definition, lower-cased as the lint compares."""
    return {a.phrase.lower() for a in definition.compliance.acknowledged}


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


@bp.post("/campaigns")
@require_role("marketer")
def campaign_save() -> ResponseReturnValue:
    text = request.form.get("definition", "")
    try:
        definition = definition_from_yaml(text, "definition")
        applied = runs.save_definition(_svc(), definition, actor=_actor(), source="definition")
    except InputError as exc:
        page = render_template(
            "console/campaign_form.html", text=text, refused=exc.message, problems=_problems(exc)
        )
        return page, 422
    flash(f"Saved campaign {applied.name}.", "ok")
    for finding in applied.unacknowledged:
        flash(
            f"Needs an acknowledgement before it can be scheduled: {finding['phrase']!r} "
            f"in {finding['template']} ({finding['message']})",
            "warning",
        )
    return redirect(url_for("console.campaign", name=applied.name))


@bp.get("/campaigns/<name>")
@require_role("viewer")
def campaign(name: str) -> ResponseReturnValue:
    svc = _svc()
    row, definition = runs.load_campaign(svc, name)
    schedule = definition.schedule.to_schedule(svc.settings.clinic_timezone)
    audience = svc.patients.count_audience(
        definition.audience.model_dump(), svc.now().astimezone(_zone()).date()
    )
    return render_template(
        "console/campaign.html",
        campaign=row,
        definition=definition,
        text=definition_yaml(row["definition"]),
        next_sends=schedules.next_sends(schedule, svc.now(), 5),
        audience=audience,
        runs=svc.ledger.runs_of(int(row["id"])),
        acknowledged=acknowledged_phrases(definition),
    )


@bp.post("/campaigns/preview")
@require_role("viewer")
def campaign_preview() -> ResponseReturnValue:
    """The messages one patient would get from the definition in the form, unsaved."""
    svc = _svc()
    external_id = request.form.get("patient", "").strip()
    try:
        definition = definition_from_yaml(request.form.get("definition", ""), "definition")
        findings = runs.lint_definition(svc, definition)
        channels = _render_for(svc, definition, external_id) if external_id else {}
    except (InputError, NotFound) as exc:
        problems = _problems(exc) if isinstance(exc, InputError) else [Problem("patient", str(exc))]
        return render_template(_preview_template(), problems=problems)
    return render_template(
        _preview_template(),
        channels=channels,
        findings=findings,
        acknowledged=acknowledged_phrases(definition),
        rules=len(compliance.load_rules().rules),
        patient=external_id,
    )


def _preview_template() -> str:
    return "console/_preview.html" if _fragment() else "console/preview_page.html"


def _render_for(
    svc: Services, definition: CampaignDefinition, external_id: str
) -> dict[str, dict[str, Any]]:
    # Mirrors campaigns.content.preview.preview, which reads the saved definition only.
    recipient = svc.patients.find(external_id)
    if recipient is None:
        raise NotFound("no patient with that external_id")
    channels: dict[str, dict[str, Any]] = {}
    for channel in definition.channels:
        url = svc.unsubscribe_url(recipient.patient_id, None) if channel == "email" else None
        context = build_context(
            first_name=recipient.first_name,
            last_name=recipient.last_name,
            clinic=svc.clinic,
            campaign=definition.name,
            unsubscribe_url=url,
        )
        part = svc.renderer.render(definition.templates, channel, context).to_dict()
        if channel == "sms":
            if svc.settings.sms_smart_encoding:
                part["body"] = sms.smart_encode(part["body"])
            part["segments"] = sms.count_segments(part["body"]).to_dict()
        channels[channel] = part
    return channels


def _control(what: str, call: Callable[[], T]) -> tuple[bool, T | None]:
    """(done?, answer) of a control call; a refusal or an unreachable broker is flashed."""
    from kombu.exceptions import OperationalError
    from redis.exceptions import RedisError

    try:
        return True, call()
    except InputError as exc:
        flash(str(exc), "error")
    except (RedisError, OperationalError):
        log.exception("%s: the broker could not be reached", what)
        flash(f"{what}: could not reach Redis; try again shortly.", "error")
    return False, None


@bp.post("/campaigns/<name>/<any(schedule, run, pause, resume, cancel):action>")
@require_role("marketer")
def campaign_action(name: str, action: str) -> ResponseReturnValue:
    from tasks import control

    svc, actor = _svc(), _actor()
    row, _ = runs.load_campaign(svc, name)  # 404 before anything is enqueued
    back = redirect(url_for("console.campaign", name=name))
    if action == "cancel" and request.form.get("confirm") != "yes":
        flash("Tick the box to confirm the cancellation.", "error")
        return back
    if action == "run":
        if row["status"] != "scheduled":
            flash("Approve and schedule the campaign before running it.", "error")
            return back
        done, run_id = _control("Run now", lambda: control.run_now(svc, name, actor=actor))
        if run_id is not None:
            flash(f"Run {run_id} started.", "ok")
            return redirect(url_for("console.run", run_id=run_id))
        if done:
            flash("This occurrence already has a run.", "info")
        return back
    calls: dict[str, Callable[[], object]] = {
        "schedule": lambda: control.schedule(svc, name, actor=actor),
        "pause": lambda: control.pause(svc, name, actor=actor),
        "resume": lambda: control.resume(svc, name, actor=actor),
        "cancel": lambda: control.cancel(svc, name, actor=actor),
    }
    done, answer = _control(action.capitalize(), calls[action])
    if done:
        said = f": {answer}" if isinstance(answer, str) else ""
        flash(f"{action.capitalize()} done{said}.", "ok")
    return back


# runs ------------------------------------------------------------------------------------


@bp.get("/runs/<int:run_id>")
@require_role("viewer")
def run(run_id: int) -> ResponseReturnValue:
    status = runs.run_status(_svc(), run_id)
    return render_template("console/run.html", status=status, final=FINAL_RUN_STATES)


@bp.get("/runs/<int:run_id>/progress")
@require_role("viewer")
def run_progress(run_id: int) -> ResponseReturnValue:
    status = runs.run_status(_svc(), run_id)
    return render_template("console/_run_progress.html", status=status, final=FINAL_RUN_STATES)


@bp.post("/runs/<int:run_id>/<any(pause, resume, cancel):action>")
@require_role("marketer")
def run_action(run_id: int, action: str) -> ResponseReturnValue:
    svc, actor = _svc(), _actor()
    runs.run_status(svc, run_id)  # 404 for a run that does not exist
    if action == "cancel" and request.form.get("confirm") != "yes":
        flash("Tick the box to confirm the cancellation.", "error")
        return redirect(url_for("console.run", run_id=run_id))
    calls: dict[str, Callable[[], object]] = {
        "pause": lambda: runs.pause_run(svc, run_id, actor=actor),
        "resume": lambda: runs.resume_run(svc, run_id, actor=actor),
        "cancel": lambda: runs.cancel_run(svc, run_id, actor=actor),
    }
    done, _ = _control(action.capitalize(), calls[action])
    if done:
        flash(f"Run {run_id} is {runs.run_status(svc, run_id)['status']}.", "ok")
    return redirect(url_for("console.run", run_id=run_id))


# audit and inbound ------------------------------------------------------------------------


@bp.get("/audit")
@require_role("viewer")
def audit_log() -> ResponseReturnValue:
    before = request.args.get("before", type=int)
    actor = request.args.get("actor") or None
    action = request.args.get("action") or None
    events = q.audit_page(_svc().db, before_id=before, actor=actor, action_prefix=action)
    return render_template("console/audit.html", events=events, actor=actor, action=action)


@bp.get("/inbound")
@require_role("viewer")
def inbound() -> ResponseReturnValue:
    reviewed = request.args.get("reviewed") == "1"
    messages = q.flagged_inbound(_svc().db, include_reviewed=reviewed)
    return render_template("console/inbound.html", messages=messages, reviewed=reviewed)


@bp.post("/inbound/<int:message_id>/reviewed")
@require_role("marketer")
def inbound_reviewed(message_id: int) -> ResponseReturnValue:
    if q.mark_reviewed(_svc().db, message_id, actor=_actor()):
        flash("Marked as reviewed.", "ok")
    else:
        abort(404)
    return redirect(url_for("console.inbound"))
