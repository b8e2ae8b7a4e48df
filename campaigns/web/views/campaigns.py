"""Campaigns: the list (archived ones under their own filter), the "Advanced: YAML"
editor with its live preview, one campaign's page and its controls (approve and
schedule, run now, pause, resume, cancel). The form without YAML, clone, archive
and restore are campaigns.web.views.studio_form's."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from campaigns.content import catalogue, compliance_rules
from campaigns.content.approval import review_status
from campaigns.content.definitions import CampaignDefinition
from campaigns.content.preview import preview_channels
from campaigns.domain.states import CampaignState
from campaigns.errors import InputError, NotFound, Problem
from campaigns.sending import control, results, timing
from campaigns.services import Services
from campaigns.web.context import services
from campaigns.web.security import require_role, signed_in_as
from campaigns.web.views.common import definition_from_yaml, definition_yaml
from campaigns.web.views.console import actor, attempt, bp, fragment, problems

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


@bp.get("/campaigns")
@require_role("viewer")
def campaigns() -> ResponseReturnValue:
    # each row with its next occurrence and last run's figures (campaigns.sending.results)
    archived = request.args.get("show") == "archived"
    listed = results.campaign_overview(services(), archived=archived)
    return render_template("console/campaigns.html", campaigns=listed, archived=archived)


@bp.get("/campaigns/new/yaml")
@require_role("marketer")
def campaign_yaml_new() -> ResponseReturnValue:
    once = (services().now() + timedelta(days=30)).date().isoformat()
    return render_template("console/campaign_form.html", text=NEW_CAMPAIGN_YAML.format(once=once))


@bp.get("/campaigns/<name>/yaml")
@require_role("marketer")
def campaign_yaml(name: str) -> ResponseReturnValue:
    row, _ = catalogue.load_campaign(services(), name)
    return render_template(
        "console/campaign_form.html", text=definition_yaml(row["definition"]), campaign=row
    )


@bp.post("/campaigns")
@require_role("marketer")
def campaign_save() -> ResponseReturnValue:
    text = request.form.get("definition", "")
    try:
        definition = definition_from_yaml(text, "definition")
        applied = catalogue.save_definition(
            services(),
            definition,
            actor=actor(),
            source="definition",
            may_acknowledge=signed_in_as("admin"),
        )
    except InputError as exc:
        page = render_template(
            "console/campaign_form.html", text=text, refused=exc.message, problems=problems(exc)
        )
        return page, 422
    flash(f"Saved campaign {applied.name}.", "ok")
    if applied.lapsed:
        flash("Changed since approval: the campaign is a draft again; submit it again.", "warning")
    for finding in applied.unacknowledged:
        flash(
            f"Needs an acknowledgement before it can be scheduled: {finding['phrase']!r} "
            f"in {finding['template']}:{finding['line']} ({finding['message']})",
            "warning",
        )
    for ack in applied.unmatched:
        flash(
            f"This acknowledgement names no finding any more (its sentence changed or "
            f"moved) and covers nothing: {ack['phrase']!r} in {ack['template']}:{ack['line']}",
            "warning",
        )
    return redirect(url_for("console.campaign", name=applied.name))


@bp.get("/campaigns/<name>")
@require_role("viewer")
def campaign(name: str) -> ResponseReturnValue:
    return _campaign_page(name)


@bp.get("/campaigns/id/<int:campaign_id>")
@require_role("viewer")
def campaign_by_id(campaign_id: int) -> ResponseReturnValue:
    """One campaign by id: a cancelled or archived one whose name a newer one took."""
    return _campaign_page(campaign_id)


def _campaign_page(key: str | int) -> ResponseReturnValue:
    svc = services()
    shown = catalogue.campaign_summary(svc, key, audience=True)
    # Linted now, against the templates as they are: what schedule and run will judge.
    try:
        findings = catalogue.mark_acknowledged(
            shown.definition, catalogue.lint_definition(svc, shown.definition)
        )
        lint_problems: list[Problem] = []
    except InputError as exc:
        findings, lint_problems = [], problems(exc)
    return render_template(
        "console/campaign.html",
        campaign=shown.row,
        definition=shown.definition,
        text=definition_yaml(shown.row["definition"]),
        next_sends=shown.next_sends,
        audience=shown.audience,
        runs=shown.runs,
        findings=findings,
        lint_problems=lint_problems,
        review=review_status(svc, int(shown.row["id"]), shown.definition),
    )


@bp.post("/campaigns/preview")
@require_role("viewer")
def campaign_preview() -> ResponseReturnValue:
    """The messages one patient would get from the definition in the form, unsaved."""
    svc = services()
    external_id = request.form.get("patient", "").strip()
    template = "console/_preview.html" if fragment() else "console/preview_page.html"
    try:
        definition = definition_from_yaml(request.form.get("definition", ""), "definition")
        findings = catalogue.lint_definition(svc, definition)
        channels = _render_for(svc, definition, external_id) if external_id else {}
    except (InputError, NotFound) as exc:
        found = problems(exc) if isinstance(exc, InputError) else [Problem("patient", str(exc))]
        # A fragment shows its problems in place (htmx swaps only 2xx); a page is a 422.
        return render_template(template, problems=found), 200 if fragment() else 422
    timing, timing_problem = _timing_for(svc, definition, external_id)
    return render_template(
        template,
        channels=channels,
        timing=timing,
        timing_problem=timing_problem,
        findings=catalogue.mark_acknowledged(definition, findings),
        rules=len(compliance_rules.load_rules().rules),
        patient=external_id,
    )


def _render_for(
    svc: Services, definition: CampaignDefinition, external_id: str
) -> dict[str, dict[str, Any]]:
    recipient = svc.patients.find(external_id)
    if recipient is None:
        raise NotFound("no patient with that external_id")
    channels = preview_channels(svc, definition, recipient)
    svc.reports.record_access(
        actor(), "patient.preview", recipient.patient_id, campaign=definition.name
    )
    return channels


def _timing_for(
    svc: Services, definition: CampaignDefinition, external_id: str
) -> tuple[dict[str, Any] | None, str | None]:
    """When the patient's messages for the schedule's next occurrence go, or why not known."""
    recipient = svc.patients.find(external_id) if external_id else None
    if recipient is None:
        return None, None
    try:
        return timing.send_times(
            svc, definition, recipient, timing.next_occurrence(svc, definition)
        ), None
    except InputError as exc:
        return None, exc.message


@bp.post("/campaigns/<name>/<any(schedule, run, pause, resume, cancel):action>")
@require_role("marketer")
def campaign_action(name: str, action: str) -> ResponseReturnValue:
    svc, who = services(), actor()
    row, _ = catalogue.load_campaign(svc, name)  # 404 before anything is enqueued
    back = redirect(url_for("console.campaign", name=name))
    if action == "cancel" and request.form.get("confirm") != "yes":
        flash("Tick the box to confirm the cancellation.", "error")
        return back
    if action == "run":
        if row["status"] != CampaignState.SCHEDULED:
            flash("Get the campaign approved and schedule it before running it.", "error")
            return back
        done, run_id = attempt("Run now", lambda: control.run_now(svc, name, actor=who))
        if run_id is not None:
            flash(f"Run {run_id} started.", "ok")
            return redirect(url_for("console.run", run_id=run_id))
        if done:
            flash("This occurrence already has a run.", "info")
        return back
    calls: dict[str, Callable[[], object]] = {
        "schedule": lambda: control.schedule(svc, name, actor=who),
        "pause": lambda: control.pause(svc, name, actor=who),
        "resume": lambda: control.resume(svc, name, actor=who),
        "cancel": lambda: control.cancel(svc, name, actor=who),
    }
    done, answer = attempt(action.capitalize(), calls[action])
    if done:
        said = f": {answer}" if isinstance(answer, str) else ""
        flash(f"{action.capitalize()} done{said}.", "ok")
    return back
